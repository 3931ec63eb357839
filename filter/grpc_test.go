package filter

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc":              true,
		"application/grpc+proto":        true,
		"application/grpc-web":          true,
		"application/grpc-web-text":     true,
		"application/GRPC;charset=utf8": true,
		"application/grpcx":             false,
		"application/json":              false,
		"application/grp":               false,
		"":                              false,
	} {
		h := http.Header{}
		if ct != "" {
			h["Content-Type"] = []string{ct}
		}
		if got := IsGRPC(h); got != want {
			t.Errorf("IsGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestGRPCCode(t *testing.T) {
	for status, want := range map[int]int{
		502: GRPCUnavailable, 503: GRPCUnavailable, 504: GRPCDeadlineExceeded, 429: GRPCResourceExhausted,
		413: GRPCResourceExhausted, 401: GRPCUnauthenticated, 403: GRPCPermissionDenied, 400: GRPCInternal,
		404: GRPCUnimplemented, 500: GRPCUnknown, 408: GRPCUnknown,
	} {
		if got := GRPCCode(status); got != want {
			t.Errorf("GRPCCode(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestEncodeGRPCMessage(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":   "plain text",
		"100%":         "100%25",
		"ü":            "%C3%BC",
		"a\nb\x7f":     "a%0Ab%7F",
		"":             "",
		"id <x>&{y}~!": "id <x>&{y}~!",
	} {
		if got := EncodeGRPCMessage(in); got != want {
			t.Errorf("EncodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRefuseGRPC: a filter's refusal of a gRPC request is a Trailers-Only gRPC answer.
func TestRefuseGRPC(t *testing.T) {
	for _, c := range []struct {
		grpc bool
		ct   string
	}{{false, "application/json"}, {true, "application/grpc"}} {
		w := httptest.NewRecorder()
		q := &Request{RequestID: "r1", GRPC: c.grpc}
		q.Refuse(w, http.StatusTooManyRequests)
		res := w.Result()
		if q.Status != 429 || res.Header.Get("Content-Type") != c.ct {
			t.Fatalf("grpc %v: status %d, content type %q", c.grpc, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if c.grpc && (res.StatusCode != 200 || res.Header.Get("Grpc-Status") != "8" ||
			res.Header.Get("Grpc-Message") != "switchyard: rate limited (request id r1)" || w.Body.Len() != 0) {
			t.Fatalf("gRPC refusal: %d %v %q", res.StatusCode, res.Header, w.Body.String())
		}
		if !c.grpc && res.StatusCode != 429 {
			t.Fatalf("JSON refusal: %d", res.StatusCode)
		}
	}
}

// TestRefuseMessageGRPC: a refusal with its own text (auth's 503) keeps the text in the
// gRPC answer.
func TestRefuseMessageGRPC(t *testing.T) {
	w := httptest.NewRecorder()
	q := &Request{RequestID: "r2", GRPC: true}
	q.RefuseMessage(w, http.StatusServiceUnavailable, "authentication unavailable")
	res := w.Result()
	if q.Status != 503 || res.StatusCode != 200 || res.Header.Get("Grpc-Status") != "14" ||
		res.Header.Get("Grpc-Message") != "switchyard: authentication unavailable (request id r2)" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
}
