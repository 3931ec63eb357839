package gateway

import (
	"testing"

	"github.com/switchyard/switchyard/config"
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
			c, err := routeFilters(&tt.route, nil)
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
