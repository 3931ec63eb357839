package apikey

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
)

// The mechanism holds and looks up SHA-256 hashes only. The timing test cannot tell a
// lookup by hash from a comparison of raw keys that happens to be quick, so this one
// checks the structure: the lookup map is keyed by [32]byte, its keys are exactly the
// hashes of the file's keys, and no byte sequence reachable from the mechanism holds a
// key (only its hash and name). A key admitted and a key refused leave nothing behind.
func TestStoresOnlyHashes(t *testing.T) {
	m, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, presented := range []string{billingKey, reportsKey + "x"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("X-Api-Key", presented)
		m.Authenticate(nil, r, nil)
	}

	byHash := reflect.ValueOf(m.index.byHash)
	if kt := byHash.Type().Key(); kt != reflect.TypeFor[[sha256.Size]byte]() {
		t.Fatalf("the lookup map is keyed by %v, want [%d]byte (a SHA-256)", kt, sha256.Size)
	}
	want := map[[sha256.Size]byte]bool{sha256.Sum256([]byte(billingKey)): true, sha256.Sum256([]byte(reportsKey)): true}
	if len(m.index.byHash) != len(want) {
		t.Errorf("%d entries in the lookup map, want %d", len(m.index.byHash), len(want))
	}
	for sum := range m.index.byHash {
		if !want[sum] {
			t.Errorf("the lookup map holds %x, which is no key's SHA-256", sum)
		}
	}

	secrets := [][]byte{[]byte(billingKey), []byte(reportsKey), []byte(reportsKey + "x")}
	held := reachableBytes(reflect.ValueOf(m))
	// The walk must reach what the mechanism stores, or finding no key proves nothing.
	billingSum := sha256.Sum256([]byte(billingKey))
	for _, stored := range [][]byte{[]byte("billing"), billingSum[:]} {
		if !slices.ContainsFunc(held, func(b []byte) bool { return bytes.Equal(b, stored) }) {
			t.Fatalf("the walk did not reach %q; it cannot tell what the mechanism holds", stored)
		}
	}
	for _, held := range held {
		for _, secret := range secrets {
			if bytes.Contains(held, secret) {
				t.Errorf("the mechanism holds the bytes of a key: %q", held)
			}
		}
	}
}

// reachableBytes returns every string, byte slice and byte array reachable from v,
// following pointers, slices, arrays, maps (keys and values), interfaces and struct fields,
// unexported ones included.
func reachableBytes(v reflect.Value) [][]byte {
	var out [][]byte
	seen := map[uintptr]bool{}
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			out = append(out, []byte(v.String()))
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer {
				if seen[v.Pointer()] {
					return
				}
				seen[v.Pointer()] = true
			}
			walk(v.Elem())
		case reflect.Slice, reflect.Array:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				b := make([]byte, v.Len())
				for i := range b {
					b[i] = byte(v.Index(i).Uint())
				}
				out = append(out, b)
				return
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Key())
				walk(it.Value())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		}
	}
	walk(v)
	return out
}
