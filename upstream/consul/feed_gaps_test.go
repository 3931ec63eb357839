package consul

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/switchyard/switchyard/internal/consultest"
	"github.com/switchyard/switchyard/internal/testkit"
	"github.com/switchyard/switchyard/upstream"
)

// The changes below are ones no check change attributes to a service. The feed must
// deliver them within about a second; the periodic sweep (WaitTime, 5 minutes by default)
// must not be what finds them, so each wait is far below WaitTime.
const gapWait = 5 * time.Second

// catalogRegister registers r straight into the catalog (an external node, as
// consul-esm or a registrator would).
func catalogRegister(t *testing.T, cli *api.Client, r *api.CatalogRegistration) {
	t.Helper()
	if _, err := cli.Catalog().Register(r, nil); err != nil {
		t.Fatal(err)
	}
}

// watchMany registers n services prefix0..prefix<n-1> at 10.0.0.1:80 with a passing check,
// watches them all, and waits for their first snapshot. n above
// cheapSweepPerReader*DefaultReaders makes the feed explain index moves instead of sweeping.
func watchMany(t *testing.T, agent *consultest.Agent, d upstream.Discoverer, prefix string, n int) []*testkit.Recorder {
	t.Helper()
	admin := agent.Client(t)
	for i := range n {
		register(t, admin, &api.AgentServiceRegistration{ID: fmt.Sprintf("%s-%d", prefix, i),
			Name: fmt.Sprintf("%s%d", prefix, i), Address: "10.0.0.1", Port: 80}, "")
	}
	recs := make([]*testkit.Recorder, n)
	for i := range n {
		recs[i] = &testkit.Recorder{}
		startWatch(t, d, upstream.Target{Service: fmt.Sprintf("%s%d", prefix, i)}, recs[i].Update)
	}
	return recs
}

// A node re-registered with a new address: its instance has no address of its own, and no
// services index or check moves.
func TestFeedNodeAddressChange(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	catalogRegister(t, admin, &api.CatalogRegistration{Node: "ext1", Address: "10.9.0.1",
		Service: &api.AgentService{ID: "na-1", Service: "na", Port: 80},
		Checks:  api.HealthChecks{{CheckID: "na-chk", Name: "c", ServiceID: "na-1", Status: api.HealthPassing}}})
	d := New(newClient(t, agent.Addr), Options{})
	rec := &testkit.Recorder{Wait: gapWait}
	startWatch(t, d, upstream.Target{Service: "na"}, rec.Update)
	rec.WaitKeys(t, "10.9.0.1:80")
	catalogRegister(t, admin, &api.CatalogRegistration{Node: "ext1", Address: "10.9.0.2"})
	rec.WaitKeys(t, "10.9.0.2:80")
}

// A new node registers, in one request, an instance of a watched service without a check of
// its own and a node-level check: the check change explains the services index move but
// names no service.
func TestFeedNewNodeWithNodeCheck(t *testing.T) {
	agent := consultest.Start(t)
	d := New(newClient(t, agent.Addr), Options{})
	recs := watchMany(t, agent, d, "f", 20)
	recs[0].WaitKeys(t, "10.0.0.1:80")
	catalogRegister(t, agent.Client(t), &api.CatalogRegistration{Node: "new1", Address: "10.0.0.9",
		Service: &api.AgentService{ID: "f0-new", Service: "f0", Port: 80},
		Checks:  api.HealthChecks{{CheckID: "nodecheck", Name: "n", Status: api.HealthPassing}}})
	recs[0].Wait = gapWait
	recs[0].WaitKeys(t, "10.0.0.1:80", "10.0.0.9:80")
}

// A change without checks and a check change in one transaction: both are at one index,
// which the check change explains.
func TestFeedCoalescedTransaction(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	const node = "ext2"
	catalogRegister(t, admin, &api.CatalogRegistration{Node: node, Address: "10.0.0.200",
		Service: &api.AgentService{ID: "nochk", Service: "g0", Address: "10.0.0.5", Port: 80}})
	catalogRegister(t, admin, &api.CatalogRegistration{Node: node, Address: "10.0.0.200",
		Service: &api.AgentService{ID: "g5b", Service: "g5", Address: "10.0.0.6", Port: 80},
		Checks:  api.HealthChecks{{CheckID: "g5b-chk", Name: "c", ServiceID: "g5b", Status: api.HealthPassing}}})
	d := New(newClient(t, agent.Addr), Options{})
	recs := watchMany(t, agent, d, "g", 20)
	recs[0].WaitKeys(t, "10.0.0.1:80", "10.0.0.5:80")
	recs[5].WaitKeys(t, "10.0.0.1:80", "10.0.0.6:80")
	ops := api.TxnOps{
		&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node,
			Service: api.AgentService{ID: "nochk", Service: "g0", Address: "10.0.0.5", Port: 81, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}},
		&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{Node: node, CheckID: "g5b-chk",
			Name: "c", ServiceID: "g5b", ServiceName: "g5", Status: api.HealthCritical}}},
	}
	if ok, resp, _, err := admin.Txn().Txn(ops, nil); err != nil || !ok {
		t.Fatalf("txn: %v %v %+v", ok, err, resp)
	}
	recs[5].Wait, recs[0].Wait = gapWait, gapWait
	recs[5].WaitKeys(t, "10.0.0.1:80")
	recs[0].WaitKeys(t, "10.0.0.1:80", "10.0.0.5:81")
}

// A rolling deploy: registrations with checks in quick succession and, among them, a change
// without checks that the next registration's index hides.
func TestFeedCoalescedBurst(t *testing.T) {
	agent := consultest.Start(t)
	admin := agent.Client(t)
	const node = "ext3"
	catalogRegister(t, admin, &api.CatalogRegistration{Node: node, Address: "10.0.0.200",
		Service: &api.AgentService{ID: "nochk", Service: "h0", Address: "10.0.0.5", Port: 80}})
	d := New(newClient(t, agent.Addr), Options{})
	recs := watchMany(t, agent, d, "h", 20)
	recs[0].WaitKeys(t, "10.0.0.1:80", "10.0.0.5:80")
	for i := range 6 {
		catalogRegister(t, admin, &api.CatalogRegistration{Node: node, Address: "10.0.0.200",
			Service: &api.AgentService{ID: fmt.Sprintf("dep-%d", i), Service: "deploy", Port: 1000 + i},
			Checks:  api.HealthChecks{{CheckID: fmt.Sprintf("dep-%d-chk", i), Name: "c", ServiceID: fmt.Sprintf("dep-%d", i), Status: api.HealthPassing}}})
		if i == 3 {
			catalogRegister(t, admin, &api.CatalogRegistration{Node: node, Address: "10.0.0.200",
				Service: &api.AgentService{ID: "nochk", Service: "h0", Address: "10.0.0.5", Port: 81}})
		}
	}
	recs[0].Wait = gapWait
	recs[0].WaitKeys(t, "10.0.0.1:80", "10.0.0.5:81")
}
