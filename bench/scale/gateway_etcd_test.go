package scale_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard/switchyard/bench/scale"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/etcdtest"
	upstreametcd "github.com/switchyard/switchyard/upstream/etcd"
)

// BenchmarkGatewayEtcdScale is the gateway at 10,000 routes over a real registry: an
// embedded etcd holding 10,000 services of 10 instances (100,000 keys), the etcd
// discoverer built as cmd/switchyard builds it, and gateway.Apply. It reports the time from
// Apply until every pool has its first snapshot (/readyz's condition) and the memory the
// gateway and its watches added (the in-process etcd server's share included). One iteration
// is one whole run; use -benchtime=1x:
//
//	go test -run '^$' -bench GatewayEtcdScale -benchtime=1x ./bench/scale/
func BenchmarkGatewayEtcdScale(b *testing.B) {
	const routes, perService = 10000, 10
	for range b.N {
		srv := etcdtest.Start(b)
		loadServices(b, srv.Client(b), routes, perService)
		cli, err := upstreametcd.NewClient(&config.Etcd{Endpoints: srv.Endpoints()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cli.Close() })
		cpu := scale.CPUTime()
		s := applyRoutes(b, routes, upstreametcd.New(cli, upstreametcd.Options{Logger: slog.New(slog.DiscardHandler)}))
		cpu = scale.CPUTime() - cpu
		rt := s.handler.Table().Match(nil, "", "/"+serviceName(routes-1)+"/x")
		if rt == nil || rt.Pool.View() == nil || rt.Pool.View().Snapshot.Len() != perService {
			b.Fatalf("the last route is not matched to a pool of %d endpoints", perService)
		}
		b.Logf("%d routes over etcd, %d x %d endpoints: ready in %v (CPU %v); heap +%.1f MiB (%.0f B/route), stacks +%.1f MiB, RSS +%.0f MiB, goroutines +%d",
			routes, routes, perService, s.ready.Round(time.Millisecond), cpu.Round(time.Millisecond),
			scale.MiB(s.growth.HeapBytes), float64(s.growth.HeapBytes)/routes, scale.MiB(s.growth.StackBytes),
			scale.MiB(s.growth.RSSBytes), s.growth.Goroutines)
		b.ReportMetric(scale.Millis(s.ready), "ready-ms")
		b.ReportMetric(scale.Millis(cpu), "ready-cpu-ms")
		b.ReportMetric(scale.MiB(s.growth.HeapBytes), "heap-MiB")
		b.ReportMetric(scale.MiB(s.growth.RSSBytes), "rss-MiB")
	}
}

// loadServices writes services x perService instance keys under the default prefix, named
// as routesYAML's services, in transactions of 128 puts (etcd's default limit).
func loadServices(tb testing.TB, cli *clientv3.Client, services, perService int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ops := make([]clientv3.Op, 0, 128)
	flush := func() {
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			tb.Fatalf("loading services: %v", err)
		}
		ops = ops[:0]
	}
	for i := range services {
		for j := range perService {
			addr := fmt.Sprintf("127.0.0.1:%d", 20000+j)
			ops = append(ops, clientv3.OpPut(upstreametcd.DefaultPrefix+serviceName(i)+"/"+addr, addr))
			if len(ops) == cap(ops) {
				flush()
			}
		}
	}
	if len(ops) > 0 {
		flush()
	}
}
