package upstream

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseEntry(t *testing.T) {
	cases := []struct {
		in      string
		want    Endpoint
		wantErr string
	}{
		{in: `{"address":"10.0.1.5","port":8080,"weight":2,"meta":{"zone":"a"}}`, want: Endpoint{Key: "10.0.1.5:8080", Weight: 2, Meta: map[string]string{"zone": "a"}}},
		{in: `{"host":"svc.local","port":80}`, want: Endpoint{Key: "svc.local:80"}},
		{in: `{"address":"::1","port":9000,"scheme":"HTTPS"}`, want: Endpoint{Key: "[::1]:9000", Scheme: "https"}},
		{in: `{"address":"[2001:db8::1]","port":1}`, want: Endpoint{Key: "[2001:db8::1]:1"}},
		{in: " 127.0.0.1:9001\n", want: Endpoint{Key: "127.0.0.1:9001"}},
		{in: "[::1]:9001", want: Endpoint{Key: "[::1]:9001"}},
		{in: "http://127.0.0.1:9001", want: Endpoint{Key: "127.0.0.1:9001", Scheme: "http"}},
		{in: "https://api.internal", want: Endpoint{Key: "api.internal:443", Scheme: "https"}},
		{in: "http://api.internal/", want: Endpoint{Key: "api.internal:80", Scheme: "http"}},
		{in: "", wantErr: "empty value"},
		{in: `{"port":80}`, wantErr: `no "address"`},
		{in: `{"address":"a","port":0}`, wantErr: "out of range"},
		{in: `{"address":"a","port":70000}`, wantErr: "out of range"},
		{in: `{"address":"a","port":80,"weight":-1}`, wantErr: "negative"},
		{in: `{"address":"a","port":80,"scheme":"ftp"}`, wantErr: "not http or https"},
		{in: `{"address":"a b","port":80}`, wantErr: "invalid host"},
		{in: `{"address":`, wantErr: "invalid JSON"},
		{in: "ftp://x:21", wantErr: "not http, https or h2c"},
		{in: "h2c://127.0.0.1:50051", want: Endpoint{Key: "127.0.0.1:50051", Scheme: "http", Protocol: ProtocolH2C}},
		{in: "h2c://grpc.internal", want: Endpoint{Key: "grpc.internal:80", Scheme: "http", Protocol: ProtocolH2C}},
		{in: `{"address":"a","port":1,"meta":{"protocol":"h2c"}}`, want: Endpoint{Key: "a:1", Meta: map[string]string{"protocol": "h2c"}, Protocol: ProtocolH2C}},
		{in: `{"address":"a","port":1,"scheme":"https","meta":{"protocol":"h2"}}`, want: Endpoint{Key: "a:1", Scheme: "https", Meta: map[string]string{"protocol": "h2"}, Protocol: ProtocolH2}},
		{in: `{"address":"a","port":1,"meta":{"protocol":"http1"}}`, want: Endpoint{Key: "a:1", Meta: map[string]string{"protocol": "http1"}, Protocol: ProtocolHTTP1}},
		{in: `{"address":"a","port":1,"meta":{"protocol":"grpc"}}`, wantErr: `meta protocol: protocol "grpc" is not auto, http1, h2c or h2`},
		{in: `{"address":"a","port":1,"meta":{"protocol":"H2C"}}`, wantErr: "is not auto"},
		{in: "just-a-name", wantErr: "not JSON, a URL or host:port"},
		{in: "host:port", wantErr: "invalid port"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseEntry([]byte(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(c.want) {
				t.Fatalf("got %+v %v, want %+v", got, err, c.want)
			}
		})
	}
}

func TestNewSnapshot(t *testing.T) {
	s := NewSnapshot([]Endpoint{
		{Key: "b:1", Weight: 0},
		{Key: "a:1", Weight: 3},
		{Key: ""},
		{Key: "b:1", Weight: 5, Scheme: "https"}, // later duplicate wins
	})
	eps := s.Endpoints()
	if len(eps) != 2 || eps[0].Key != "a:1" || eps[1].Key != "b:1" {
		t.Fatalf("not sorted/deduplicated: %+v", eps)
	}
	if eps[0].Weight != 3 || eps[0].Scheme != "http" || eps[1].Weight != 5 || eps[1].Scheme != "https" {
		t.Fatalf("defaults or last-wins wrong: %+v", eps)
	}
	if !s.Equal(NewSnapshot([]Endpoint{{Key: "b:1", Weight: 5, Scheme: "https"}, {Key: "a:1", Weight: 3}})) {
		t.Fatal("equal snapshots compare unequal")
	}
	if s.Equal(NewSnapshot([]Endpoint{{Key: "a:1", Weight: 3}})) {
		t.Fatal("different snapshots compare equal")
	}
}

func TestExcluded(t *testing.T) {
	var ex Excluded
	states := make([]*EndpointState, MaxExcluded+2)
	for i := range states {
		states[i] = NewEndpointState("k", nil)
		ex.Add(states[i])
	}
	if ex.Len() != MaxExcluded || !ex.Has(states[0]) || ex.Has(states[MaxExcluded]) {
		t.Fatalf("len %d", ex.Len())
	}
}

// firstPicker picks the first available member: enough to observe the pool's plumbing.
type firstPicker struct{ members []Member }

func (f firstPicker) Pick(_ *http.Request, ex Excluded) (*Member, error) {
	for i := range f.members {
		m := &f.members[i]
		if !ex.Has(m.State) && m.State.Available() && m.State.TryAcquire() {
			return m, nil
		}
	}
	return nil, ErrNoEndpoint
}

type firstBuilder struct{}

func (firstBuilder) Build(m []Member) Picker { return firstPicker{m} }

type countingPolicy struct {
	created atomic.Int64
	members atomic.Int64
}

func (p *countingPolicy) NewHealth(string) Health { p.created.Add(1); return nil }
func (p *countingPolicy) SetMembers(hs []Health)  { p.members.Store(int64(len(hs))) }

func TestPoolKeepsStateAcrossSnapshots(t *testing.T) {
	now := time.Unix(1000, 0)
	policy := &countingPolicy{}
	p := NewPool("users", firstBuilder{}, PoolOptions{Health: policy, RetainRemoved: time.Minute, Now: func() time.Time { return now }})
	if p.Ready() {
		t.Fatal("ready before the first snapshot")
	}
	if _, err := p.Pick(nil, Excluded{}); err != ErrNoEndpoint {
		t.Fatalf("pick before snapshot: %v", err)
	}
	p.Update(NewSnapshot([]Endpoint{{Key: "a:1"}, {Key: "b:1"}}))
	m, err := p.Pick(nil, Excluded{})
	if err != nil || m.Key != "a:1" || m.State.InFlight() != 1 {
		t.Fatalf("pick: %+v %v", m, err)
	}
	stateA := m.State

	// a:1 removed while its request runs: the request still decrements the same state.
	p.Update(NewSnapshot([]Endpoint{{Key: "b:1"}}))
	stateA.Done(Outcome{Status: 200})
	if stateA.InFlight() != 0 || p.RetainedCount() != 1 {
		t.Fatalf("in-flight %d retained %d", stateA.InFlight(), p.RetainedCount())
	}
	// a:1 comes back within RetainRemoved: same state, no new health.
	p.Update(NewSnapshot([]Endpoint{{Key: "a:1", Weight: 4}, {Key: "b:1"}}))
	if v := p.View(); v.Members[0].State != stateA || v.Members[0].Weight != 4 || policy.created.Load() != 2 || policy.members.Load() != 2 {
		t.Fatalf("state not reused: created %d", policy.created.Load())
	}
	// Gone for longer than RetainRemoved: released.
	p.Update(NewSnapshot([]Endpoint{{Key: "b:1"}}))
	now = now.Add(2 * time.Minute)
	p.Update(NewSnapshot([]Endpoint{{Key: "b:1"}}))
	if p.RetainedCount() != 0 {
		t.Fatalf("retained %d after expiry", p.RetainedCount())
	}
	if v := p.View(); v.Version != 5 {
		t.Fatalf("version %d, want 5", v.Version)
	}
}
