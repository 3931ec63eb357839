package basic

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
)

// bigUsers returns n users with well-formed cost-4 bcrypt hashes that no password matches
// (real ones would take minutes to make): what New sees of a large htpasswd file.
func bigUsers(n int) map[string][]byte {
	users := make(map[string][]byte, n)
	for i := range n {
		h := fmt.Appendf(nil, "$2y$04$%053d", i) // digits are in bcrypt's alphabet
		users[fmt.Sprintf("user%06d", i)] = h
	}
	return users
}

// routesSharingOneFile builds one mechanism per route over one users map, as 20 routes
// inheriting `defaults: auth: basic` get, and returns the heap they keep and the time
// they took.
func routesSharingOneFile(tb testing.TB, users map[string][]byte, routes int) (heap uint64, took time.Duration) {
	tb.Helper()
	return testkit.HeapKept(func() any {
		mechanisms := make([]*Mechanism, routes)
		for i := range mechanisms {
			m, err := New(&config.BasicAuth{Realm: "r", CacheTTL: time.Minute, Users: users})
			if err != nil {
				tb.Fatal(err)
			}
			mechanisms[i] = m
		}
		return mechanisms
	})
}

// Mechanisms share the loaded users map instead of copying it: 20 routes over a
// 100,000-user file keep well under a megabyte between them (a copy per route kept
// hundreds), and look users up in the very map config loaded.
func TestMechanismsShareUsers(t *testing.T) {
	users := bigUsers(100_000)
	heap, took := routesSharingOneFile(t, users, 20)
	t.Logf("20 mechanisms over 100,000 users: %d KiB of heap kept, %v", heap>>10, took)
	if heap > 1<<20 {
		t.Errorf("20 mechanisms keep %d KiB of heap; sharing the users map keeps well under 1 MiB", heap>>10)
	}
	m, err := New(&config.BasicAuth{Realm: "r", CacheTTL: time.Minute, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	users["probe"] = []byte("$2y$04$" + fmt.Sprintf("%053d", 0))
	defer delete(users, "probe")
	if _, ok := m.users["probe"]; !ok {
		t.Error("the mechanism holds a copy of the users map, not the map config loaded")
	}
}

// BenchmarkNewSharedFile: building 20 routes' mechanisms over one 100,000-user map (a
// config reload after the file changed), with the heap they keep per run.
func BenchmarkNewSharedFile(b *testing.B) {
	users := bigUsers(100_000)
	var heap uint64
	for b.Loop() {
		h, _ := routesSharingOneFile(b, users, 20)
		heap += h
	}
	b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "MiB-kept/op")
}
