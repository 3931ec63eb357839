package gateway

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/etcdtest"
	"github.com/switchyard/switchyard/internal/zktest"
	"github.com/switchyard/switchyard/upstream/consul"
	"github.com/switchyard/switchyard/upstream/etcd"
	"github.com/switchyard/switchyard/upstream/zookeeper"
)

// changeGap separates successive registry changes in the propagation benchmark.
const changeGap = 60 * time.Millisecond

// registryOps registers and deregisters one instance of service "users".
type registryOps struct {
	register   func(addr string)
	deregister func(addr string)
}

// measurePropagation times how long a registration and a deregistration take to reach
// traffic: from the registry call to the first request through the proxy that is routed
// accordingly (200 from the new instance; 503 once it is gone). It reports p50 and p99 in
// milliseconds. Changes are spaced changeGap apart (not counted), as real ones are: a
// service does not flap every few milliseconds, and the Consul watch deliberately spaces
// back-to-back queries (Consul's blocking-query guidance).
func measurePropagation(b *testing.B, regs Registries, discovery string, ops registryOps) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") }))
	defer be.Close()
	addr := be.Listener.Addr().String()
	fx := newFixture(b, fmt.Sprintf(routesTmpl, be.URL, be.URL))
	maps.Copy(fx.gw.opts.Registries, regs)
	fx.apply(b, fmt.Sprintf("discovery: %s\nroutes:\n  - prefix: /users\n    service: users\n", discovery))
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	status := func() int {
		res, err := client.Get(fx.server.URL + "/users")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	waitStatus := func(want int) time.Duration {
		start := time.Now()
		for status() != want {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("no %d within 10s", want)
			}
		}
		return time.Since(start)
	}
	waitStatus(503) // pool ready and empty
	var samples []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		time.Sleep(changeGap)
		b.StartTimer()
		start := time.Now()
		ops.register(addr)
		waitStatus(200)
		samples = append(samples, time.Since(start))
		b.StopTimer()
		time.Sleep(changeGap)
		b.StartTimer()
		start = time.Now()
		ops.deregister(addr)
		waitStatus(503)
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(samples)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(samples[len(samples)/2]), "p50-ms")
	b.ReportMetric(ms(samples[len(samples)*99/100]), "p99-ms")
	b.ReportMetric(ms(samples[len(samples)-1]), "max-ms")
}

// BenchmarkPropagation measures registry change -> traffic, end to end through the proxy:
//
//	go test -run '^$' -bench Propagation -benchtime 200x ./gateway/
//
// (each iteration is one registration and one deregistration: 2 samples).
func BenchmarkPropagation(b *testing.B) {
	ctx := context.Background()
	b.Run("etcd", func(b *testing.B) {
		srv := etcdtest.Start(b)
		cli := srv.Client(b)
		d := etcd.New(cli, etcd.Options{Prefix: "/services/"})
		measurePropagation(b, Registries{config.RegistryEtcd: d}, "{ etcd: {} }", registryOps{
			register: func(addr string) {
				if _, err := cli.Put(ctx, "/services/users/"+addr, addr); err != nil {
					b.Fatal(err)
				}
			},
			deregister: func(addr string) {
				if _, err := cli.Delete(ctx, "/services/users/"+addr); err != nil {
					b.Fatal(err)
				}
			},
		})
	})
	b.Run("consul", func(b *testing.B) {
		agent := consultest.Start(b)
		cli := agent.Client(b)
		d := consul.New(cli, consul.Options{WaitTime: time.Minute})
		measurePropagation(b, Registries{config.RegistryConsul: d}, fmt.Sprintf("{ consul: { address: %q } }", agent.Addr), registryOps{
			register: func(addr string) {
				host, port := splitHostPort(b, addr)
				if err := cli.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: addr, Name: "users", Address: host, Port: port}); err != nil {
					b.Fatal(err)
				}
			},
			deregister: func(addr string) {
				if err := cli.Agent().ServiceDeregister(addr); err != nil {
					b.Fatal(err)
				}
			},
		})
	})
	b.Run("zookeeper", func(b *testing.B) {
		srv := zktest.Start(b)
		d, err := zookeeper.New(&config.ZooKeeper{Servers: []string{srv.Addr}, Root: "/services", SessionTimeout: 10 * time.Second}, zookeeper.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		conn, _, err := zk.Connect([]string{srv.Addr}, 5*time.Second, zk.WithLogInfo(false))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		for _, p := range []string{"/services", "/services/users"} {
			if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
				b.Fatal(err)
			}
		}
		measurePropagation(b, Registries{config.RegistryZooKeeper: d}, "{ zookeeper: {} }", registryOps{
			register: func(addr string) {
				if _, err := conn.Create("/services/users/"+addr, []byte(addr), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
					b.Fatal(err)
				}
			},
			deregister: func(addr string) {
				if err := conn.Delete("/services/users/"+addr, -1); err != nil {
					b.Fatal(err)
				}
			},
		})
	})
}

func splitHostPort(b testing.TB, addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		b.Fatal(err)
	}
	return host, port
}
