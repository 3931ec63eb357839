package apikey

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"weak"

	"github.com/switchyard/switchyard/config"
)

// keyIndex finds the entries of one loaded keys slice by SHA-256 and by name. Config gives
// every route that names one keys file the same slice, so the index is built once per
// slice and shared by every mechanism over it: 20 routes inheriting a 23,000-key file from
// `defaults:` built and kept 20 indexes before (58 MiB). It is read-only once built.
type keyIndex struct {
	byHash map[[sha256.Size]byte]int32 // SHA-256 -> position in the slice
	byName map[string]int32            // name -> position, for allow lists
	errs   []error                     // what is wrong with the slice itself
}

// sliceID names a keys slice: its first element (weakly, so the table of indexes does not
// keep an old config's slice alive) and its length.
type sliceID struct {
	first weak.Pointer[config.APIKey]
	n     int
}

// indexes holds the index of every keys slice some mechanism uses, by sliceID. An entry is
// dropped once its slice is collected, which happens only after every mechanism holding
// the slice is gone.
var indexes sync.Map // sliceID -> *keyIndex

// indexFor returns the shared index of keys, building it the first time. keys must not
// change afterwards (config never changes a loaded slice).
func indexFor(keys []config.APIKey) *keyIndex {
	if len(keys) == 0 {
		return buildIndex(keys)
	}
	id := sliceID{weak.Make(&keys[0]), len(keys)}
	if idx, ok := indexes.Load(id); ok {
		return idx.(*keyIndex)
	}
	idx := buildIndex(keys)
	if prev, loaded := indexes.LoadOrStore(id, idx); loaded {
		return prev.(*keyIndex)
	}
	runtime.AddCleanup(&keys[0], func(id sliceID) { indexes.CompareAndDelete(id, idx) }, id)
	return idx
}

// buildIndex indexes keys and records what makes them unusable: an entry without a name,
// a name or hash listed twice, the hash of an empty key.
func buildIndex(keys []config.APIKey) *keyIndex {
	idx := &keyIndex{
		byHash: make(map[[sha256.Size]byte]int32, len(keys)),
		byName: make(map[string]int32, len(keys)),
	}
	for i, k := range keys {
		if k.Name == "" {
			idx.errs = append(idx.errs, errors.New("api_key: a key has no name"))
			continue
		}
		if _, dup := idx.byName[k.Name]; dup {
			idx.errs = append(idx.errs, fmt.Errorf("api_key: key name %q is listed twice", k.Name))
			continue
		}
		idx.byName[k.Name] = int32(i)
		if k.SHA256 == emptyKeyHash {
			// An empty header counts as no key at all, so this entry could never match.
			idx.errs = append(idx.errs, fmt.Errorf("api_key: key %q is the sha256 of an empty key", k.Name))
			continue
		}
		if other, dup := idx.byHash[k.SHA256]; dup {
			idx.errs = append(idx.errs, fmt.Errorf("api_key: keys %q and %q have the same sha256", keys[other].Name, k.Name))
			continue
		}
		idx.byHash[k.SHA256] = int32(i)
	}
	return idx
}
