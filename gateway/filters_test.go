package gateway

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
	"github.com/switchyard/switchyard/filter/auth/apikey"
	"github.com/switchyard/switchyard/ratelimit"
)

func TestRouteFilters(t *testing.T) {
	on := true
	tests := []struct {
		name               string
		route              config.Route
		request, response  int
		wantNil, wantError bool
	}{
		{name: "no filter, no chain", wantNil: true},
		{name: "ip lists", route: config.Route{Policy: config.Policy{Filters: config.Filters{IPAllow: []string{"10.0.0.0/8"}}}}, request: 1},
		{name: "bad ip", route: config.Route{Policy: config.Policy{Filters: config.Filters{IPDeny: []string{"10.0.0.0/99"}}}}, wantError: true},
		{name: "cors is both sides", route: config.Route{Policy: config.Policy{Filters: config.Filters{
			CORS: &config.CORS{Enabled: &on, AllowOrigins: []string{"https://app.example.com"}}}}}, request: 1, response: 1},
		{name: "response headers only", route: config.Route{Policy: config.Policy{Filters: config.Filters{
			Headers: &config.HeaderRules{Enabled: &on, Response: &config.HeaderEdits{Remove: []string{"Server"}}}}}}, response: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := routeFilters(&tt.route, nil, nil)
			if (err != nil) != tt.wantError {
				t.Fatalf("error %v, want error %v", err, tt.wantError)
			}
			if tt.wantError {
				return
			}
			if (c == nil) != tt.wantNil {
				t.Fatalf("chain %v, want nil %v", c, tt.wantNil)
			}
			if c != nil && (len(c.Request) != tt.request || len(c.Response) != tt.response) {
				t.Errorf("%d request and %d response filters, want %d and %d", len(c.Request), len(c.Response), tt.request, tt.response)
			}
		})
	}
}

// TestRouteFiltersOrder pins the chain order DESIGN fixes: IP rules, CORS preflight, auth
// and rate limit (in the order its key needs), body limit, request header edits; on the way
// out header edits, CORS, compression.
func TestRouteFiltersOrder(t *testing.T) {
	on := true
	limit := int64(10)
	rc := config.Route{Policy: config.Policy{Filters: config.Filters{
		IPAllow:      []string{"127.0.0.0/8"},
		MaxBodyBytes: &limit,
		CORS:         &config.CORS{Enabled: &on, AllowOrigins: []string{"https://app.example.com"}},
		Headers: &config.HeaderRules{Enabled: &on, Request: &config.HeaderEdits{Set: map[string]string{"X-A": "1"}},
			Response: &config.HeaderEdits{Remove: []string{"Server"}}},
		Compress: &config.Compress{Enabled: &on, MinBytes: 10, Types: []string{"text/*"}},
	}}}
	keys, err := apikey.New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: []config.APIKey{{Name: "ci", SHA256: [32]byte{1}}}})
	if err != nil {
		t.Fatal(err)
	}
	// A limit keyed on identity needs auth's answer; any other limit goes first, so an
	// unauthenticated flood meets 429 before costing an auth check each.
	for _, tc := range []struct {
		key     string
		wantReq []string
	}{
		{config.RateLimitKeyClientIP, []string{"*ipfilter.Filter", "*cors.Filter", "*ratelimit.Limiter", "*auth.Filter", "*bodylimit.Filter", "*headers.Filter"}},
		{config.RateLimitKeyIdentity, []string{"*ipfilter.Filter", "*cors.Filter", "*auth.Filter", "*ratelimit.Limiter", "*bodylimit.Filter", "*headers.Filter"}},
	} {
		rc.RateLimit = &config.RateLimit{Enabled: &on, RPS: 1, Burst: 1, Key: tc.key}
		lim, err := ratelimit.New("r", rc.RateLimit, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := routeFilters(&rc, auth.New("r", []auth.Mechanism{keys}, nil, nil), lim)
		if err != nil {
			t.Fatal(err)
		}
		var req, resp []string
		for _, f := range c.Request {
			req = append(req, fmt.Sprintf("%T", f))
		}
		for _, f := range c.Response {
			resp = append(resp, fmt.Sprintf("%T", f))
		}
		wantResp := []string{"*headers.Filter", "*cors.Filter", "*compress.Filter"}
		if !slices.Equal(req, tc.wantReq) || !slices.Equal(resp, wantResp) {
			t.Errorf("key %s: chain\nrequest  %v\nresponse %v\nwant\nrequest  %v\nresponse %v", tc.key, req, resp, tc.wantReq, wantResp)
		}
	}
}
