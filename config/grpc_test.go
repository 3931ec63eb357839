package config

import (
	"fmt"
	"testing"
)

func TestGRPCConfigErrors(t *testing.T) {
	checkErrors(t, []errorCase{
		{"unknown upstream_protocol", okRoute + "    upstream_protocol: http2\n", []string{
			`routes.yaml:4: routes[0].upstream_protocol: unknown value "http2" (did you mean "http1"? want auto or http1 or h2c or h2)`}},
		{"upstream_protocol in defaults", "defaults: { upstream_protocol: grpc }\n" + okRoute, []string{
			`routes.yaml:1: defaults.upstream_protocol: unknown value "grpc" (want auto or http1 or h2c or h2)`}},
		{"h2c upstream with http1", "routes:\n  - prefix: /a\n    upstreams: [\"h2c://127.0.0.1:1\"]\n    upstream_protocol: http1\n", []string{
			`routes.yaml:3: routes[0].upstreams[0]: an h2c:// upstream does not go with upstream_protocol: http1 (the route's protocol would win)`}},
		{"h2c upstream with a path", "routes:\n  - prefix: /a\n    upstreams: [\"h2c://127.0.0.1:1/x\"]\n", []string{
			`routes.yaml:3: routes[0].upstreams[0]: URL "h2c://127.0.0.1:1/x" must not have a path (the request path is forwarded as is)`}},
		{"h2c upstream without host", "routes:\n  - prefix: /a\n    upstreams: [\"h2c://\"]\n", []string{
			`routes.yaml:3: routes[0].upstreams[0]: URL "h2c://" has no host`}},
		{"grpc check with expect_status", okRoute + "    health_check: { grpc: true, expect_status: [200] }\n", []string{
			`routes.yaml:4: routes[0].health_check.expect_status: does not go with grpc: a gRPC check passes on SERVING only`}},
		{"check service without grpc", okRoute + "    health_check: { path: /h, service: users }\n", []string{
			`routes.yaml:4: routes[0].health_check.service: needs grpc: true (the gRPC health service name)`}},
		{"http check still needs a path", okRoute + "    health_check: { interval: 1s }\n", []string{
			`routes.yaml:4: routes[0].health_check: missing path (e.g. path: /healthz)`}},
	})
}

func TestGRPCConfigAccepted(t *testing.T) {
	c, err := Parse("routes.yaml", []byte("defaults: { upstream_protocol: h2c }\n"+
		"routes:\n"+
		"  - { prefix: /a, upstreams: [\"h2c://127.0.0.1:1\", \"http://127.0.0.1:2\"], health_check: { grpc: true, service: a.v1.A } }\n"+
		"  - { prefix: /b, upstreams: [\"https://127.0.0.1:3\"], upstream_protocol: h2, retry: { idempotent: true } }\n"+
		"  - { prefix: /c, upstreams: [\"http://127.0.0.1:4\"], upstream_protocol: auto }\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, cr := c.Routes[0], c.Routes[1], c.Routes[2]
	for _, check := range []error{
		want("route a protocol", a.UpstreamProtocol, UpstreamProtocolH2C),
		want("route a upstream", a.Upstreams[0].URL, "h2c://127.0.0.1:1"),
		want("route a check", fmt.Sprintf("%v %v %v", a.HealthCheck.GRPC, a.HealthCheck.Service, a.HealthCheck.Path), "true a.v1.A "),
		want("route b protocol", b.UpstreamProtocol, UpstreamProtocolH2),
		want("route b idempotent", b.Retry.Idempotent, true),
		want("route c protocol", cr.UpstreamProtocol, UpstreamProtocolAuto),
		want("route c idempotent", cr.Retry.Idempotent, false),
	} {
		if check != nil {
			t.Error(check)
		}
	}
}

func want[T comparable](what string, got, want T) error {
	if got != want {
		return fmt.Errorf("%s = %v, want %v", what, got, want)
	}
	return nil
}
