package gateway

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
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
	clientv3 "go.etcd.io/etcd/client/v3"
)

// outageCase is one real registry: how to register, and how to take it down and back.
type outageCase struct {
	regs      Registries
	discovery string
	register  func(t *testing.T, addr string)
	stop      func()
	restart   func(t testing.TB)
	downFor   time.Duration
	// lostOnRestart: the registry comes back empty (a Consul -dev agent keeps no state), so
	// the service registers again, as its registrar would; until it has, the registry
	// truthfully says "no instance" and requests may fail. Only the outage window counts.
	lostOnRestart bool
}

// runOutage proves the promise "registry down: keep serving the last known good pool": with
// load running through the proxy, the registry is stopped for downFor and started again;
// no request may fail, and a registration made after it is back must reach traffic.
func runOutage(t *testing.T, oc outageCase) {
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "first") }))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "second") }))
	defer second.Close()

	fx := newFixture(t, fmt.Sprintf(routesTmpl, first.URL, first.URL))
	maps.Copy(fx.gw.opts.Registries, oc.regs)
	fx.apply(t, fmt.Sprintf("discovery: %s\nroutes:\n  - prefix: /users\n    service: users\n", oc.discovery))
	oc.register(t, first.Listener.Addr().String())
	waitBody(t, fx, "first")

	l := startLoad(fx.server.URL+"/users", 2, 2*time.Millisecond, nil)
	oc.stop()
	time.Sleep(oc.downFor)
	failedWhileDown := l.failed.Load()
	oc.restart(t)
	if oc.lostOnRestart {
		oc.register(t, first.Listener.Addr().String())
	}
	oc.register(t, second.Listener.Addr().String())
	changed := time.Now()
	waitBody(t, fx, "second")
	reached := time.Since(changed).Round(time.Millisecond)
	total, failed := l.finish()
	t.Logf("registry down %s under load: %d requests, %d failed; change after restart reached traffic in %s",
		oc.downFor, total, failed, reached)
	if failedWhileDown != 0 {
		t.Fatalf("%d of %d requests failed while the registry was down", failedWhileDown, total)
	}
	if !oc.lostOnRestart && failed != 0 {
		t.Fatalf("%d of %d requests failed around the registry's restart", failed, total)
	}
}

// waitBody polls until a request answers want (the new endpoint reached traffic); 10 s cap.
func waitBody(t *testing.T, fx *fixture, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, body := fx.get(t, "/users"); code == 200 && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never routed to %q", want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistryOutageUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("holds each registry down for seconds")
	}
	ctx := context.Background()
	t.Run("etcd", func(t *testing.T) {
		srv := etcdtest.Start(t)
		// Both clients cap gRPC's reconnect backoff (etcd.NewClient does), so neither sits
		// out a long backoff after the server returns.
		newClient := func() *clientv3.Client {
			c, err := etcd.NewClient(&config.Etcd{Endpoints: srv.Endpoints(), DialTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		writer, gwCli := newClient(), newClient()
		runOutage(t, outageCase{
			regs:      Registries{config.RegistryEtcd: etcd.New(gwCli, etcd.Options{Prefix: "/services/"})},
			discovery: "{ etcd: {} }",
			register: func(t *testing.T, addr string) {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, err := writer.Put(cctx, "/services/users/"+addr, addr); err != nil {
					t.Fatal(err)
				}
			},
			stop: srv.Stop, restart: srv.Restart, downFor: 10 * time.Second,
		})
	})
	t.Run("consul", func(t *testing.T) {
		agent := consultest.Start(t)
		cli := agent.Client(t)
		runOutage(t, outageCase{
			regs:      Registries{config.RegistryConsul: consul.New(cli, consul.Options{WaitTime: 10 * time.Second})},
			discovery: fmt.Sprintf("{ consul: { address: %q } }", agent.Addr),
			register: func(t *testing.T, addr string) {
				host, port := splitHostPort(t, addr)
				if err := cli.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: addr, Name: "users", Address: host, Port: port}); err != nil {
					t.Fatal(err)
				}
			},
			stop: agent.Stop, restart: agent.Restart, downFor: 3 * time.Second, lostOnRestart: true,
		})
	})
	t.Run("zookeeper", func(t *testing.T) {
		srv := zktest.Start(t)
		d, err := zookeeper.New(&config.ZooKeeper{Servers: []string{srv.Addr}, Root: "/services", SessionTimeout: 10 * time.Second}, zookeeper.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var conn *zk.Conn
		connect := func(t *testing.T) {
			c, _, err := zk.Connect([]string{srv.Addr}, 10*time.Second, zk.WithLogInfo(false))
			if err != nil {
				t.Fatal(err)
			}
			conn = c
		}
		connect(t)
		defer func() { conn.Close() }()
		runOutage(t, outageCase{
			regs:      Registries{config.RegistryZooKeeper: d},
			discovery: "{ zookeeper: {} }",
			register: func(t *testing.T, addr string) {
				for _, p := range []string{"/services", "/services/users"} {
					if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
						t.Fatal(err)
					}
				}
				// Persistent here: the registering session must outlive the server restart
				// for this test; ephemeral-node expiry is covered in upstream/zookeeper.
				if _, err := conn.Create("/services/users/"+addr, []byte(addr), 0, zk.WorldACL(zk.PermAll)); err != nil {
					t.Fatal(err)
				}
			},
			stop: srv.Stop, restart: srv.Restart, downFor: 3 * time.Second,
		})
	})
}
