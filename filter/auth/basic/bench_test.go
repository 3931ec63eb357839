package basic

import (
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// BenchmarkAuthenticate: a returning user (cache hit), a user whose check is not cached
// (one bcrypt comparison at the default cost 10), a wrong password, and an unknown user
// (the dummy comparison, also at cost 10).
func BenchmarkAuthenticate(b *testing.B) {
	cfg := &config.BasicAuth{
		Realm:    "users",
		CacheTTL: 5 * time.Minute,
		Users:    map[string][]byte{"alice": mustHash(b, "wonderland", bcrypt.DefaultCost)},
	}
	cases := []struct {
		name, user, password string
		uncached             bool
		want                 auth.Result
	}{
		{"success_cached", "alice", "wonderland", false, auth.Admitted},
		{"success_bcrypt10", "alice", "wonderland", true, auth.Admitted},
		{"wrong_password", "alice", "wonderlanD", false, auth.Invalid},
		{"unknown_user", "mallory", "wonderland", false, auth.Invalid},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if c.uncached {
				// Every lookup finds its entry expired: each check pays bcrypt.
				clock := time.Now()
				m.cache.now = func() time.Time { clock = clock.Add(time.Hour); return clock }
			}
			r := request(basicHeader(c.user, c.password))
			m.Authenticate(nil, r, nil) // warm the cache and the scratch pool
			b.ReportAllocs()
			for b.Loop() {
				if d := m.Authenticate(nil, r, nil); d.Result != c.want {
					b.Fatalf("decision %+v", d)
				}
			}
		})
	}
}
