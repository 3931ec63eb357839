package basic

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustHash(t testing.TB, password string, cost int) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testConfig is a basic block as the loader leaves it: users read, defaults applied.
func testConfig(t testing.TB) *config.BasicAuth {
	return &config.BasicAuth{
		Realm:    "users",
		CacheTTL: 5 * time.Minute,
		Users: map[string][]byte{
			"alice": mustHash(t, "wonderland", bcrypt.MinCost),
			"bob":   mustHash(t, "builder:can we fix it", bcrypt.MinCost),
		},
	}
}

// counting wraps m's bcrypt comparison to count calls and the most that ran at once.
type counting struct {
	calls, running, maxRunning atomic.Int64
	costs                      chan int // the cost of each compared hash, when non-nil
}

func (c *counting) wrap(m *Mechanism, before func()) {
	compare := m.compare
	m.compare = func(hash, password []byte) error {
		c.calls.Add(1)
		n := c.running.Add(1)
		defer c.running.Add(-1)
		for {
			peak := c.maxRunning.Load()
			if n <= peak || c.maxRunning.CompareAndSwap(peak, n) {
				break
			}
		}
		if c.costs != nil {
			cost, _ := bcrypt.Cost(hash)
			c.costs <- cost
		}
		if before != nil {
			before()
		}
		return compare(hash, password)
	}
}

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func request(authorization ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, a := range authorization {
		r.Header.Add("Authorization", a)
	}
	return r
}

func TestNewErrors(t *testing.T) {
	good := mustHash(t, "x", bcrypt.MinCost)
	tests := []struct {
		name   string
		modify func(*config.BasicAuth)
		want   []string
	}{
		{"md5 entry", func(c *config.BasicAuth) { c.Users["carol"] = []byte("$apr1$abc$def") }, []string{`"carol": not a bcrypt hash`}},
		{"sha entry", func(c *config.BasicAuth) { c.Users["carol"] = []byte("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=") }, []string{`"carol": not a bcrypt hash`}},
		{"plain entry", func(c *config.BasicAuth) { c.Users["carol"] = []byte("secret") }, []string{`"carol"`}},
		{"truncated bcrypt", func(c *config.BasicAuth) { c.Users["carol"] = good[:40] }, []string{`"carol"`}},
		{"bcrypt with junk", func(c *config.BasicAuth) { c.Users["carol"] = append(slices.Clone(good), 'x') }, []string{`"carol": not a well-formed bcrypt hash`}},
		{"bcrypt with a bad character", func(c *config.BasicAuth) { h := slices.Clone(good); h[40] = '!'; c.Users["carol"] = h }, []string{`"carol": not a well-formed`}},
		{"bcrypt without the cost's dollar", func(c *config.BasicAuth) { h := slices.Clone(good); h[6] = 'x'; c.Users["carol"] = h }, []string{`"carol"`}},
		{"cost too high", func(c *config.BasicAuth) { c.Users["carol"] = relabel(good, "15") }, []string{"cost 15 is not between 4 and 14"}},
		{"cost too low", func(c *config.BasicAuth) { c.Users["carol"] = relabel(good, "03") }, []string{"cost 03 is not between 4 and 14"}},
		{"cost with a sign", func(c *config.BasicAuth) { c.Users["carol"] = relabel(good, "+5") }, []string{`"carol": not a well-formed`}},
		{"bcrypt major version 3", func(c *config.BasicAuth) { h := slices.Clone(good); h[1] = '3'; c.Users["carol"] = h }, []string{`"carol": not a bcrypt hash`}},
		{"colon in name", func(c *config.BasicAuth) { c.Users["a:b"] = good }, []string{`"a:b" cannot be sent`}},
		{"control in name", func(c *config.BasicAuth) { c.Users["a\x00b"] = good }, []string{"cannot be sent"}},
		{"allow unknown", func(c *config.BasicAuth) { c.Allow = []string{"alice", "ghost"} }, []string{`"ghost"`}},
		{"bad user header", func(c *config.BasicAuth) { c.UserHeader = "X User" }, []string{`user_header "X User" is not a valid header name`}},
		{"framing user header", func(c *config.BasicAuth) { c.UserHeader = "content-length" }, []string{`user_header "content-length" frames the request`}},
		{"authorization as user header", func(c *config.BasicAuth) { c.UserHeader = "authorization" }, []string{"cannot be Authorization"}},
		{"no cache ttl", func(c *config.BasicAuth) { c.CacheTTL = 0 }, []string{"cache_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.modify(cfg)
			m, err := New(cfg)
			if err == nil || m != nil {
				t.Fatalf("New = %v, %v; want an error", m, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if m, err := New(nil); err == nil || m != nil {
		t.Errorf("New(nil) = %v, %v; want an error", m, err)
	}
}

func relabel(h []byte, cost string) []byte {
	h = slices.Clone(h)
	copy(h[4:6], cost)
	return h
}

func TestAuthenticate(t *testing.T) {
	alice := basicHeader("alice", "wonderland")
	tests := []struct {
		name        string
		modify      func(*config.BasicAuth)
		headers     []string // Authorization values
		want        auth.Decision
		wantHeaders http.Header // the request's headers afterwards
		compares    int64
	}{
		{name: "no header", want: auth.Decision{Result: auth.Skipped, Reason: "missing"}, wantHeaders: http.Header{}},
		{name: "bearer", headers: []string{"Bearer abc.def.ghi"}, want: auth.Decision{Result: auth.Skipped, Reason: "missing"}},
		{name: "scheme prefix only", headers: []string{"Basicx " + alice[6:]}, want: auth.Decision{Result: auth.Skipped, Reason: "missing"}},
		{name: "valid", headers: []string{alice}, want: auth.Decision{Result: auth.Admitted, Identity: "alice", Reason: "ok"}, compares: 1},
		{name: "scheme in any case, several spaces", headers: []string{"bAsIc   " + alice[6:]}, want: auth.Decision{Result: auth.Admitted, Identity: "alice", Reason: "ok"}, compares: 1},
		{name: "colon in password", headers: []string{basicHeader("bob", "builder:can we fix it")}, want: auth.Decision{Result: auth.Admitted, Identity: "bob", Reason: "ok"}, compares: 1},
		{
			name: "user header and strip", headers: []string{alice},
			modify:      func(c *config.BasicAuth) { c.UserHeader = "x-user"; c.Strip = true },
			want:        auth.Decision{Result: auth.Admitted, Identity: "alice", Reason: "ok"},
			wantHeaders: http.Header{"X-User": {"alice"}}, compares: 1,
		},
		{name: "wrong password", headers: []string{basicHeader("alice", "wonderlanD")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, compares: 1},
		{name: "empty password", headers: []string{basicHeader("alice", "")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, compares: 1},
		{name: "unknown user costs a compare", headers: []string{basicHeader("mallory", "wonderland")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, compares: 1},
		{name: "user name differs in case", headers: []string{basicHeader("Alice", "wonderland")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}, compares: 1},
		{name: "two headers", headers: []string{alice, alice}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "scheme only", headers: []string{"Basic"}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "scheme and space", headers: []string{"Basic "}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "bad base64", headers: []string{"Basic !!!!"}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "unpadded base64", headers: []string{strings.TrimRight(basicHeader("alice", "wonderland1"), "=")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "url-safe base64", headers: []string{"Basic " + base64.URLEncoding.EncodeToString([]byte("alice:wonderland\xfb\xff"))}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "no colon", headers: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("alicewonderland"))}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "control character", headers: []string{basicHeader("alice", "wonder\x00land")}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{name: "too long", headers: []string{basicHeader("alice", strings.Repeat("w", 1100))}, want: auth.Decision{Result: auth.Invalid, Reason: "invalid"}},
		{
			name: "allowed", headers: []string{alice},
			modify: func(c *config.BasicAuth) { c.Allow = []string{"alice"} },
			want:   auth.Decision{Result: auth.Admitted, Identity: "alice", Reason: "ok"}, compares: 1,
		},
		{
			name: "not allowed, right password: forbidden, request untouched", headers: []string{basicHeader("bob", "builder:can we fix it")},
			modify: func(c *config.BasicAuth) { c.Allow = []string{"alice"}; c.UserHeader = "X-User"; c.Strip = true },
			want:   auth.Decision{Result: auth.Forbidden, Identity: "bob", Reason: "forbidden"}, compares: 1,
		},
		{
			name: "not allowed, wrong password: invalid, the allow list does not show", headers: []string{basicHeader("bob", "nope")},
			modify: func(c *config.BasicAuth) { c.Allow = []string{"alice"} },
			want:   auth.Decision{Result: auth.Invalid, Reason: "invalid"}, compares: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.modify != nil {
				tt.modify(cfg)
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var c counting
			c.wrap(m, nil)
			r := request(tt.headers...)
			if got := m.Authenticate(nil, r, nil); got != tt.want {
				t.Fatalf("decision %+v, want %+v", got, tt.want)
			}
			if got := c.calls.Load(); got != tt.compares {
				t.Errorf("%d bcrypt compares, want %d", got, tt.compares)
			}
			want := tt.wantHeaders
			if want == nil {
				want = http.Header{"Authorization": tt.headers}
			}
			if len(r.Header) != len(want) {
				t.Errorf("headers %v, want %v", r.Header, want)
			}
			for k, v := range want {
				if !slices.Equal(r.Header[k], v) {
					t.Errorf("header %s = %q, want %q", k, r.Header[k], v)
				}
			}
		})
	}
}

func TestUnknownUserPaysCommonCost(t *testing.T) {
	cfg := testConfig(t)
	cfg.Users["carol"] = mustHash(t, "x", bcrypt.MinCost+1)
	cfg.Users["dave"] = mustHash(t, "y", bcrypt.MinCost+1)
	cfg.Users["erin"] = mustHash(t, "z", bcrypt.MinCost+1)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := counting{costs: make(chan int, 1)}
	c.wrap(m, nil)
	if d := m.Authenticate(nil, request(basicHeader("mallory", "x")), nil); d.Result != auth.Invalid {
		t.Fatalf("unknown user: %+v", d)
	}
	if cost := <-c.costs; cost != bcrypt.MinCost+1 {
		t.Errorf("dummy compare at cost %d, want the file's common cost %d", cost, bcrypt.MinCost+1)
	}
}

func TestDummyHash(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, 9, 10, 12} {
		h := dummyHash(cost)
		if got, err := bcrypt.Cost(h); err != nil || got != cost {
			t.Errorf("dummyHash(%d) has cost %d, %v", cost, got, err)
		}
		if len(h) != 60 {
			t.Errorf("dummyHash(%d) is %d bytes", cost, len(h))
		}
	}
	// It runs a real comparison: bcrypt accepts it and answers a plain mismatch.
	if err := bcrypt.CompareHashAndPassword(dummyHash(bcrypt.MinCost+1), []byte("")); err != bcrypt.ErrMismatchedHashAndPassword {
		t.Errorf("compare with the dummy: %v, want a mismatch", err)
	}
	costs := func(counts map[int]int) []int {
		c := make([]int, maxCost+1)
		for cost, n := range counts {
			c[cost] = n
		}
		return c
	}
	tests := []struct {
		name   string
		counts map[int]int
		want   int
	}{
		{"no users", nil, bcrypt.DefaultCost},
		{"one cost", map[int]int{4: 3}, 4},
		{"most common", map[int]int{5: 1, 12: 3, 10: 2}, 12},
		{"tie: the higher", map[int]int{5: 2, 12: 2, 10: 1}, 12},
		{"tie with the first", map[int]int{4: 2, 6: 2}, 6},
	}
	for _, tt := range tests {
		if c := commonCost(costs(tt.counts)); c != tt.want {
			t.Errorf("commonCost(%s) = %d, want %d", tt.name, c, tt.want)
		}
	}
}

func TestChallengeAndHeaders(t *testing.T) {
	cfg := testConfig(t)
	cfg.Realm = `my "realm"` + "\r\n"
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != config.AuthBasic {
		t.Errorf("Name = %q", m.Name())
	}
	if got, want := m.Challenge(auth.Decision{}), `Basic realm="my \"realm\"  ", charset="UTF-8"`; got != want {
		t.Errorf("Challenge = %s, want %s", got, want)
	}
	if h := m.IdentityHeaders(); h != nil {
		t.Errorf("IdentityHeaders = %q", h)
	}
	cfg.UserHeader = "x-remote-user"
	if m, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if h := m.IdentityHeaders(); !slices.Equal(h, []string{"X-Remote-User"}) {
		t.Errorf("IdentityHeaders = %q", h)
	}
}

func TestVersions(t *testing.T) {
	h := mustHash(t, "pw", bcrypt.MinCost)
	for _, version := range []string{"2a", "2b", "2y"} {
		cfg := testConfig(t)
		v := slices.Clone(h)
		copy(v[1:3], version)
		cfg.Users["carol"] = v
		m, err := New(cfg)
		if err != nil {
			t.Fatalf("$%s$: %v", version, err)
		}
		if d := m.Authenticate(nil, request(basicHeader("carol", "pw")), nil); d.Result != auth.Admitted {
			t.Errorf("$%s$: %+v", version, d)
		}
	}
}

func TestBusyWhenContextEnds(t *testing.T) {
	m, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	m.slots = make(compareSlots, 1)
	m.slots <- struct{}{} // every slot taken
	m.wait = time.Hour    // only the context can end the wait
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := request(basicHeader("alice", "wonderland")).WithContext(ctx)
	if d := m.Authenticate(nil, r, nil); d != (auth.Decision{Result: auth.Unavailable, Reason: "busy"}) {
		t.Errorf("decision %+v, want unavailable/busy", d)
	}
}

func TestNewErrorsInNameOrder(t *testing.T) {
	cfg := testConfig(t)
	for _, name := range []string{"zed", "amy", "kim", "bea"} {
		cfg.Users[name] = []byte("$apr1$x$y")
	}
	_, err := New(cfg)
	if err == nil {
		t.Fatal("no error")
	}
	text := err.Error()
	last := -1
	for _, name := range []string{"amy", "bea", "kim", "zed"} {
		i := strings.Index(text, `"`+name+`"`)
		if i < last {
			t.Fatalf("errors not in name order: %q", text)
		}
		last = i
	}
}
