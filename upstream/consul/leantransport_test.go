package consul

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestLeanChecksTransport checks that NewClient's client decodes a marked checks query
// itself, leaves unmarked queries and error answers to the api client, and fails a marked
// query whose answer is not a checks list.
func TestLeanChecksTransport(t *testing.T) {
	const answer = `[{"Node":"n1","CheckID":"c1","ServiceName":"a","Status":"passing","ModifyIndex":7,"Output":"ok"}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "42")
		switch r.URL.Query().Get("filter") {
		case "fail":
			http.Error(w, "injected failure", http.StatusInternalServerError)
		case "garbage":
			_, _ = w.Write([]byte(`[{"Node":`))
		default:
			_, _ = w.Write([]byte(answer))
		}
	}))
	defer srv.Close()
	cli := newClient(t, strings.TrimPrefix(srv.URL, "http://"))
	want := checkEntry{Node: "n1", CheckID: "c1", ServiceName: "a", Status: "passing", ModifyIndex: 7}

	query := func(filter string, sink *checksSink) ([]checkEntry, *api.QueryMeta, error) {
		ctx := context.Background()
		if sink != nil {
			ctx = withChecksSink(ctx, sink)
		}
		var entries []checkEntry
		meta, err := cli.Raw().Query("/v1/health/state/any", &entries, (&api.QueryOptions{Filter: filter}).WithContext(ctx))
		return entries, meta, err
	}

	var sink checksSink
	entries, meta, err := query("", &sink)
	if err != nil {
		t.Fatal(err)
	}
	if !sink.decoded || len(sink.entries) != 1 || sink.entries[0] != want || len(entries) != 0 || meta.LastIndex != 42 {
		t.Errorf("marked query: sink %+v, client decoded %+v, index %d; want the check in the sink, index 42",
			sink, entries, meta.LastIndex)
	}

	entries, _, err = query("", nil)
	if err != nil || len(entries) != 1 || entries[0] != want {
		t.Errorf("unmarked query: %+v, %v; want the client's own decoding", entries, err)
	}

	sink = checksSink{}
	if _, _, err := query("fail", &sink); err == nil || !strings.Contains(err.Error(), "500") || sink.decoded {
		t.Errorf("error answer: %v, sink decoded %v; want the client's 500 error", err, sink.decoded)
	}
	if _, _, err := query("garbage", &sink); err == nil || !strings.Contains(err.Error(), "checks answer") || sink.decoded {
		t.Errorf("garbage answer: %v, sink decoded %v; want a decoding error", err, sink.decoded)
	}
}

// TestLeanChecksTransportLimit checks that an answer past the limit is an error, and one at
// it decodes.
func TestLeanChecksTransportLimit(t *testing.T) {
	const answer = `[{"Node":"n1","CheckID":"c1","ServiceName":"a","Status":"passing","ModifyIndex":7}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		limit   int64
		wantErr bool
	}{
		{name: "at the limit", limit: int64(len(answer))},
		{name: "one byte past it", limit: int64(len(answer)) - 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sink checksSink
			req, err := http.NewRequestWithContext(withChecksSink(context.Background(), &sink), http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := leanChecksTransport{next: srv.Client().Transport, limit: tt.limit}.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "larger than") {
					t.Errorf("err = %v, want one saying the answer is too large", err)
				}
				return
			}
			if err != nil || !sink.decoded || len(sink.entries) != 1 {
				t.Errorf("err %v, sink %+v; want the check decoded", err, sink)
			}
		})
	}
}

// TestReleaseBuffer checks that a buffer grown past maxPooledBuffer is not kept.
func TestReleaseBuffer(t *testing.T) {
	tests := []struct {
		name string
		size int
		want bool
	}{
		{name: "small", size: 1 << 10, want: true},
		{name: "at the bound", size: maxPooledBuffer, want: true},
		{name: "past it", size: maxPooledBuffer + 1, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := bytes.NewBuffer(make([]byte, 0, tt.size))
			if got := releaseBuffer(buf); got != tt.want {
				t.Errorf("releaseBuffer(cap %d) = %v, want %v", buf.Cap(), got, tt.want)
			}
		})
	}
}

// idleCloser records CloseIdleConnections.
type idleCloser struct {
	http.RoundTripper
	closed bool
}

func (c *idleCloser) CloseIdleConnections() { c.closed = true }

// TestLeanChecksTransportClosesIdle checks that http.Client.CloseIdleConnections reaches the
// transport under leanChecksTransport.
func TestLeanChecksTransportClosesIdle(t *testing.T) {
	next := &idleCloser{}
	(&http.Client{Transport: leanChecksTransport{next: next}}).CloseIdleConnections()
	if !next.closed {
		t.Error("CloseIdleConnections did not reach the next transport")
	}
}
