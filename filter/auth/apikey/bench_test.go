package apikey

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// BenchmarkAuthenticate compares a matching key, a near miss (a real key with its last byte
// changed) and a far miss, against a file of 1,000 keys: the three should cost the same
// within noise, the hash being most of it.
func BenchmarkAuthenticate(b *testing.B) {
	cfg := &config.APIKeyAuth{Header: "X-Api-Key"}
	for i := range 1000 {
		cfg.Keys = append(cfg.Keys, entry("key"+strconv.Itoa(i), billingKey+strconv.Itoa(i)))
	}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	real := billingKey + "500"
	cases := []struct {
		name, key string
		want      auth.Result
	}{
		{"match", real, auth.Admitted},
		{"near_miss", real[:len(real)-1] + "x", auth.Invalid},
		{"miss", "sk_test_00000000000000000000000000000000", auth.Invalid},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("X-Api-Key", c.key)
			b.ReportAllocs()
			for b.Loop() {
				if d := m.Authenticate(nil, r, nil); d.Result != c.want {
					b.Fatalf("decision %+v", d)
				}
			}
		})
	}
}
