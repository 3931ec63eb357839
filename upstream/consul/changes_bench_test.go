package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
)

// checksAnswer is a /v1/health/state/any body as Consul 1.14 writes it (indented) for n
// services of one check each plus the node's serfHealth: about 450 bytes per check.
func checksAnswer(tb testing.TB, n int) []byte {
	tb.Helper()
	checks := []*api.HealthCheck{{Node: "node1", CheckID: "serfHealth", Name: "Serf Health Status",
		Status: api.HealthPassing, Output: "Agent alive and reachable", ServiceTags: []string{}, CreateIndex: 12, ModifyIndex: 12}}
	for i := range n {
		checks = append(checks, &api.HealthCheck{Node: "node1", CheckID: fmt.Sprintf("service:svc%05d-0", i),
			Name: fmt.Sprintf("Service 'svc%05d' check", i), Status: api.HealthPassing,
			ServiceID: fmt.Sprintf("svc%05d-0", i), ServiceName: fmt.Sprintf("svc%05d", i), ServiceTags: []string{},
			Type: "ttl", CreateIndex: uint64(20 + i), ModifyIndex: uint64(20 + i)})
	}
	b, err := json.MarshalIndent(checks, "", "    ")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkDecodeChecks measures what one answer of the checks feed costs the gateway:
// decodeChecks and the diff, as the feed does them; encoding/json into checkEntry and the
// diff, as the api client's own decoding would; and a decode into api.HealthCheck.
func BenchmarkDecodeChecks(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		body := checksAnswer(b, n)
		var prev []checkEntry
		if err := json.Unmarshal(body, &prev); err != nil {
			b.Fatal(err)
		}
		old := indexChecks(prev)
		b.Run(fmt.Sprintf("lean-and-diff/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for range b.N {
				var entries []checkEntry
				if err := json.NewDecoder(bytes.NewReader(body)).Decode(&entries); err != nil {
					b.Fatal(err)
				}
				diffChecks(old, indexChecks(entries), func(string) {}, func(string) {})
			}
		})
		b.Run(fmt.Sprintf("decodeChecks-and-diff/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for range b.N {
				entries, err := decodeChecks(body)
				if err != nil {
					b.Fatal(err)
				}
				diffChecks(old, indexChecks(entries), func(string) {}, func(string) {})
			}
		})
		b.Run(fmt.Sprintf("api.HealthCheck/%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for range b.N {
				var entries []*api.HealthCheck
				if err := json.NewDecoder(bytes.NewReader(body)).Decode(&entries); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChecksQuery measures one whole answer of the checks feed against a real agent
// holding 1,000 services (one check each): the agent's work, the transfer and the one-pass
// decode and diff, with the transport's gzip negotiation on (Go's default) and off.
func BenchmarkChecksQuery(b *testing.B) {
	const services = 1000
	agent := consultest.Start(b)
	regs := make([]*api.AgentServiceRegistration, services)
	for i := range regs {
		regs[i] = &api.AgentServiceRegistration{ID: fmt.Sprintf("svc%04d-0", i), Name: fmt.Sprintf("svc%04d", i),
			Address: "10.0.0.1", Port: 80, Check: &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing}}
	}
	registerAll(b, agent.Client(b), regs)
	for _, gzip := range []bool{true, false} {
		b.Run(fmt.Sprintf("gzip=%v", gzip), func(b *testing.B) {
			cfg := api.DefaultConfig()
			cfg.Address = agent.Addr
			cfg.Transport.DisableCompression = !gzip
			b.Cleanup(cfg.Transport.CloseIdleConnections)
			hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
			if err != nil {
				b.Fatal(err)
			}
			hc.Transport = leanChecksTransport{next: hc.Transport} // as NewClient does
			cfg.HttpClient = hc
			cli, err := api.NewClient(cfg)
			if err != nil {
				b.Fatal(err)
			}
			f := &feed{cli: cli, opts: Options{WaitTime: time.Second}, checksMoved: make(chan struct{}),
				services: map[string]*service{}, work: make(chan struct{}, 1)}
			b.ReportAllocs()
			for range b.N {
				if _, err := f.fetchChecks(context.Background(), 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
