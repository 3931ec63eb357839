package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// The access line has the same fields for every request, plus grpc_status for gRPC ones.
func TestAccessLogFields(t *testing.T) {
	tests := []struct {
		name       string
		grpcStatus int
		want       any // grpc_status; nil: absent
		fields     int // time, level, msg, the 11 fields every line has, grpc_status
	}{
		{"http", noGRPCStatus, nil, 14},
		{"grpc", 14, "UNAVAILABLE", 15},
		{"grpc, undefined code", 42, "42", 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, nil))
			r := httptest.NewRequest("POST", "/pkg.Svc/Call", nil)
			rec := requestRecord{status: 200, bytes: 7, upstream: "10.0.0.1:80", client: "192.0.2.1",
				reqID: "id1", identity: "jwt:ann", grpcStatus: tt.grpcStatus}
			accessLog(log, &Route{Name: "/pkg.Svc"}, r, &rec, time.Millisecond)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.Bytes())
			}
			for k, want := range map[string]any{"route": "/pkg.Svc", "method": "POST", "path": "/pkg.Svc/Call",
				"status": 200.0, "bytes": 7.0, "upstream": "10.0.0.1:80", "request_id": "id1",
				"client": "192.0.2.1", "identity": "jwt:ann", "grpc_status": tt.want} {
				if got := line[k]; got != want {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
			if len(line) != tt.fields {
				t.Errorf("%d fields, want %d: %v", len(line), tt.fields, line)
			}
		})
	}
}
