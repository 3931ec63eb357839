package config

import (
	"reflect"

	"go.yaml.in/yaml/v3"
)

// dictionary decodes a mapping whose keys are data, not schema (header and query names), into
// a map[string]T. Keys are taken as written: ${VAR} is expanded in values only, as everywhere
// in the file. A key written twice is an error, a null value too (a header set to nothing is
// written ""), and merge keys add the merged mapping's entries, the keys written beside them
// winning, as they do for schema mappings. Each entry's path is path.KEY.
func (d *decoder) dictionary(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.bad(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.entries(n, m, path)
	// Entries refused above are not in m, but the mapping was not written empty: validation
	// must not add "must not be empty" to their errors.
	d.sizes[path] = max(len(n.Content)/2, m.Len())
	v.Set(m)
}

// entries adds n's entries to m: merged mappings first, then n's own keys over them.
func (d *decoder) entries(n *yaml.Node, m reflect.Value, path string) {
	d.keys(n, path, func(k, val *yaml.Node) { d.mergeEntries(k, val, m, path) }, func(k, val *yaml.Node) {
		p := join(path, k.Value)
		if isNull(val) {
			d.bad(k.Line, p, "missing value (write \"\" for an empty one)")
			return
		}
		d.lines[p] = k.Line
		e := reflect.New(m.Type().Elem()).Elem()
		d.decode(val, e, p)
		if _, ok := d.lines[p]; ok { // not refused by the value's decoder
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
	})
}

// mergeEntries applies a `<<:` value inside a data mapping: one mapping or a list of them,
// earlier ones winning. The depth bound and the visit count of decode apply through a
// decode of each merged mapping's values, and a mapping that merges itself is refused.
func (d *decoder) mergeEntries(key, n *yaml.Node, m reflect.Value, path string) {
	for _, t := range mergeTargets(n) {
		switch {
		case d.merging[t] > 0:
			d.errorf(key.Line, path, "merge key (<<) includes the mapping it is in")
		case t.Kind != yaml.MappingNode:
			d.errorf(key.Line, path, "merge key (<<) needs a mapping, got %s", kindName(t))
		case d.overVisits(t, path):
			return
		default:
			d.depth++
			if d.depth > maxDepth {
				d.errorf(t.Line, path, "nested too deeply (recursive anchor?)")
			} else {
				d.entries(t, m, path)
			}
			d.depth--
		}
	}
}

// overVisits counts one visit of n and reports whether the file went over maxVisits. Merge
// keys that only merge other mappings decode no value, so without this count `<<: [*a, *a]`
// chains would double the work at each level unseen.
func (d *decoder) overVisits(n *yaml.Node, path string) bool {
	if d.visits++; d.visits <= maxVisits {
		return false
	}
	if !d.tooBig {
		d.tooBig = true
		d.bad(n.Line, path, "too many values (anchors and aliases expand to over %d)", maxVisits)
	}
	return true
}
