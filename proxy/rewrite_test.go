package proxy

import "testing"

func TestRewritePath(t *testing.T) {
	tests := []struct {
		prefix, rewrite, path, want string
	}{
		{"/api", "/v2", "/api/users", "/v2/users"},
		{"/api", "/v2", "/api", "/v2"},
		{"/api", "/v2", "/api/", "/v2/"},
		{"/api", "/", "/api/users", "/users"},
		{"/api", "/", "/api", "/"},
		{"/api", "/", "/api/", "/"},
		{"/", "/v2", "/", "/v2"},
		{"/", "/v2", "/x/y", "/v2/x/y"},
		{"/", "/", "/x", "/x"},
		{"/api/v1", "/internal/api", "/api/v1/a%2Fb", "/internal/api/a%2Fb"},
		{"/caf%C3%A9", "/cafe", "/caf%C3%A9/menu", "/cafe/menu"},
	}
	for _, tt := range tests {
		r := &Route{matchPrefix: tt.prefix, rewritePrefix: tt.rewrite}
		if got := r.rewritePath(tt.path); got != tt.want {
			t.Errorf("prefix %q rewritten to %q: %q -> %q, want %q", tt.prefix, tt.rewrite, tt.path, got, tt.want)
		}
	}
}
