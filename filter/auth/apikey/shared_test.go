package apikey

import (
	"crypto/sha256"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/testkit"
)

// bigKeys returns n keys file entries, about what a full 2 MiB keys file holds at n=23,000.
func bigKeys(n int) []config.APIKey {
	keys := make([]config.APIKey, n)
	for i := range keys {
		keys[i] = config.APIKey{Name: "key" + strconv.Itoa(i), SHA256: sha256.Sum256([]byte(strconv.Itoa(i)))}
	}
	return keys
}

// routesSharingOneFile builds one mechanism per route over one keys slice, as routes
// inheriting `defaults: auth: api_key` get, and returns the heap they keep and the time
// they took.
func routesSharingOneFile(tb testing.TB, keys []config.APIKey, routes int) (heap uint64, took time.Duration) {
	tb.Helper()
	return testkit.HeapKept(func() any {
		mechanisms := make([]*Mechanism, routes)
		for i := range mechanisms {
			m, err := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: keys})
			if err != nil {
				tb.Fatal(err)
			}
			mechanisms[i] = m
		}
		return mechanisms
	})
}

// BenchmarkNewSharedFile: building 20 routes' mechanisms over one keys file of 23,000 keys
// (a config reload after the file changed), with the heap they keep per run.
func BenchmarkNewSharedFile(b *testing.B) {
	keys := bigKeys(23_000)
	var heap uint64
	for b.Loop() {
		h, _ := routesSharingOneFile(b, keys, 20)
		heap += h
	}
	b.ReportMetric(float64(heap)/float64(b.N)/(1<<20), "MiB-kept/op")
}

// Mechanisms over one keys slice share one index instead of building their own: 20 routes
// over a full keys file keep about what one index takes (a copy per route kept 58 MiB).
func TestMechanismsShareIndex(t *testing.T) {
	keys := bigKeys(23_000)
	heap, took := routesSharingOneFile(t, keys, 20)
	t.Logf("20 mechanisms over 23,000 keys: %d KiB of heap kept, %v", heap>>10, took)
	if heap > 8<<20 {
		t.Errorf("20 mechanisms keep %d KiB of heap; one shared index takes a few MiB", heap>>10)
	}
	a, errA := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: keys})
	b, errB := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: keys, Allow: []string{"key1"}})
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if a.index != b.index || &a.keys[0] != &keys[0] {
		t.Error("mechanisms over one keys slice do not share it and its index")
	}
	// Another slice, even with equal content, is another file's: its own index.
	other, err := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: bigKeys(23_000)})
	if err != nil {
		t.Fatal(err)
	}
	if other.index == a.index {
		t.Error("a different keys slice got the first one's index")
	}
	// A shorter view of the same array is a different list of keys.
	short, err := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: keys[:10]})
	if err != nil {
		t.Fatal(err)
	}
	if len(short.index.byHash) != 10 {
		t.Errorf("keys[:10] got an index of %d keys", len(short.index.byHash))
	}
}

// The index of a keys slice goes once no mechanism holds the slice, so reloads do not
// accumulate old files' indexes.
func TestIndexDroppedWithItsKeys(t *testing.T) {
	count := func() int {
		n := 0
		indexes.Range(func(any, any) bool { n++; return true })
		return n
	}
	before := count()
	func() {
		m, err := New(&config.APIKeyAuth{Header: "X-Api-Key", Keys: bigKeys(100)})
		if err != nil || count() != before+1 {
			t.Fatalf("New: %v; %d indexes, want %d", err, count(), before+1)
		}
		runtime.KeepAlive(m)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for count() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n > before {
		t.Errorf("%d indexes after the keys were collected, want %d", n, before)
	}
}
