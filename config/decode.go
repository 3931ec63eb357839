package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxDepth bounds recursion. The schema itself is only a few levels deep, but merge keys
// (<<: *anchor) can refer to the mapping that contains them.
const maxDepth = 32

var (
	durationType   = reflect.TypeFor[time.Duration]()
	upstreamType   = reflect.TypeFor[Upstream]()
	valueMatchType = reflect.TypeFor[ValueMatch]()
)

// decoder walks a yaml.Node tree into the types of types.go by their yaml tags. It is
// hand-rolled rather than yaml.Node.Decode because yaml stops at the first error of a kind
// and does not give field paths; here every error carries file, line and path, all of them
// are collected, and every key written in the file is remembered (lines) so defaults can
// tell "unset" from an explicit zero.
type decoder struct {
	lookup func(string) (string, bool) // environment, for ${VAR}
	errs   *errorList
	lines  map[string]int // field path -> line, for every non-null key and list item in the file
	sizes  map[string]int // field path of a data mapping (header names...) -> entries written
	depth  int
	// merging holds the mappings whose merge keys are being applied, to refuse a mapping
	// that merges itself: with `<<: [*a, *a]` even a depth bound would allow 2^depth work.
	merging map[*yaml.Node]int
	visits  int // decode calls, bounded against alias blow-ups
	// suggestions caches suggest per struct type and unknown key.
	suggestions map[suggestKey]string
	tooBig      bool // visits went over maxVisits: the decoded config is partial
}

// maxVisits bounds the work one file may cause. Aliases let a small file name the same
// subtree many times. A real routes.yaml visits a few thousand values, and even a file of
// maxFileSize holding 34,000 one-line routes (`- {prefix: /1, service: s}`) visits about
// 100,000, so this bound only stops expansion, and keeps a hostile file to a fraction of
// a second (issue #11, item 16).
const maxVisits = 1 << 17

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs.add(line, path, format, args...)
}

// bad reports a value that could not be decoded and forgets that path was written, so the
// validator neither checks the zero value left behind nor reports the field a second time.
func (d *decoder) bad(line int, path, format string, args ...any) {
	d.errorf(line, path, format, args...)
	delete(d.lines, path)
}

// join appends a key to a field path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// isNull reports an explicit null (`key:`, `key: ~`, `key: null`): it means "not set".
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names what the file holds, for "expected X, got Y" messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// decode stores n into v. A null leaves v at its zero value, except that a null
// pointer-to-struct becomes an empty block, so `etcd:` alone means "etcd with defaults".
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		d.bad(n.Line, path, "nested too deeply (recursive anchor?)")
		return
	}
	if d.overVisits(n, path) {
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 1 {
			d.decode(n.Content[0], v, path)
		}
		return
	}
	t := v.Type()
	if isNull(n) {
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(t.Elem()))
		}
		return
	}
	switch {
	case t == durationType:
		d.duration(n, v, path)
		return
	case t == upstreamType && n.Kind == yaml.ScalarNode:
		d.scalar(n, v.FieldByName("URL"), path)
		return
	case t == valueMatchType && n.Kind == yaml.ScalarNode:
		// The short form `X-Canary: always` is {exact: always}; recording the exact key
		// lets validation count it as the one condition written.
		d.lines[join(path, "exact")] = n.Line
		d.scalar(n, v.FieldByName("Exact"), join(path, "exact"))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Map:
		d.dictionary(n, v, path)
	default:
		d.scalar(n, v, path)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.bad(n.Line, path, "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = item.Line
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.bad(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields, names := fieldsOf(v.Type())
	d.keys(n, path, func(k, val *yaml.Node) { d.merge(k, val, v, path) }, func(k, val *yaml.Node) {
		idx, ok := fields[k.Value]
		if !ok {
			if s := d.suggest(v.Type(), k.Value, names); s != "" {
				d.errorf(k.Line, path, "unknown key %q (did you mean %q?)", k.Value, s)
			} else {
				d.errorf(k.Line, path, "unknown key %q", k.Value)
			}
			return
		}
		p := join(path, k.Value)
		f := v.FieldByIndex(idx)
		if isNull(val) && !(f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct) {
			return // null = not set; keep any value a merge key gave
		}
		d.lines[p] = k.Line
		d.decode(val, f, p)
	})
}

// keys walks a mapping's entries the way struct mappings and maps both need: merge keys
// first through merge (so keys written beside them win, YAML's merge semantics), then each
// own key once through each, with non-scalar and repeated keys refused at their line.
func (d *decoder) keys(n *yaml.Node, path string, merge, each func(k, val *yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			d.merging[n]++
			merge(k, n.Content[i+1])
			d.merging[n]--
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "keys must be plain strings, got %s", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, path, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		each(k, val)
	}
}

// suggest is the package's suggest, remembered per struct type and key: an alias repeats
// the same unknown key many times, and each suggestion costs an edit distance per field.
func (d *decoder) suggest(t reflect.Type, key string, names []string) string {
	k := suggestKey{t, key}
	s, ok := d.suggestions[k]
	if !ok {
		s = suggest(key, names)
		d.suggestions[k] = s
	}
	return s
}

type suggestKey struct {
	t   reflect.Type
	key string
}

// merge applies a `<<:` value: one mapping, or a list of them where earlier ones win.
func (d *decoder) merge(key, n *yaml.Node, v reflect.Value, path string) {
	for _, t := range mergeTargets(n) {
		if d.merging[t] > 0 {
			d.errorf(key.Line, path, "merge key (<<) includes the mapping it is in")
			continue
		}
		d.decode(t, v, path)
	}
}

// mergeTargets returns the nodes a `<<:` value names (one mapping, or a list of them),
// aliases resolved, in the order they are applied: last first, so earlier ones win.
func mergeTargets(n *yaml.Node) []*yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	listed := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		listed = n.Content
	}
	targets := make([]*yaml.Node, 0, len(listed))
	for i := len(listed) - 1; i >= 0; i-- {
		t := listed[i]
		for t.Kind == yaml.AliasNode {
			t = t.Alias
		}
		targets = append(targets, t)
	}
	return targets
}

// schemaFields is fieldsOf's cache: a file visits the same few struct types over and over
// (through aliases, hundreds of thousands of times), and walking their tags each time was
// most of the cost of an alias bomb.
var schemaFields sync.Map // reflect.Type -> structFields

type structFields struct {
	index map[string][]int
	names []string
}

// fieldsOf maps yaml keys to field indexes, flattening `,inline` fields (Route's Policy).
// The results are shared: callers must not modify them.
func fieldsOf(t reflect.Type) (map[string][]int, []string) {
	if sf, ok := schemaFields.Load(t); ok {
		return sf.(structFields).index, sf.(structFields).names
	}
	fields := map[string][]int{}
	var names []string
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			idx := append(append([]int(nil), prefix...), i)
			switch {
			case opts == "inline":
				walk(f.Type, idx)
			case name == "" || name == "-" || !f.IsExported():
			default:
				fields[name] = idx
				names = append(names, name)
			}
		}
	}
	walk(t, nil)
	schemaFields.Store(t, structFields{fields, names})
	return fields, names
}

// text returns the scalar's value with ${VAR} references expanded, or false after reporting.
func (d *decoder) text(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.bad(n.Line, path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	s, err := expand(n.Value, d.lookup)
	if err != nil {
		d.bad(n.Line, path, "%v", err)
		return "", false
	}
	return s, true
}

// scalar decodes by the Go type and the (expanded) text, not by YAML's tag: `${PORT}` is a
// string to YAML but may stand for a number, and quoting a number is harmless. Booleans
// take only true/false, because YAML 1.1's yes/no/on/off are a classic trap.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	var want string
	switch v.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int64, reflect.Uint32:
		want = "an integer"
	case reflect.Float64:
		want = "a number"
	default:
		panic("config: no decoder for " + v.Type().String()) // schema bug, caught by tests
	}
	s, ok := d.text(n, path, want)
	if !ok {
		return
	}
	bad := func() { d.bad(n.Line, path, "expected %s, got %q", want, s) }
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			bad()
		}
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			bad()
			return
		}
		v.SetInt(i)
	case reflect.Uint32:
		if strings.HasPrefix(s, "-") {
			d.bad(n.Line, path, "must not be negative, got %s", s)
			return
		}
		u, err := strconv.ParseUint(s, 0, 32)
		if err != nil {
			bad()
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			bad()
			return
		}
		v.SetFloat(f)
	}
}

// duration takes Go duration syntax ("30s", "1m30s", "500ms") or a bare 0. Every duration in
// the schema is a length of time, so negatives are rejected here once for all.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	s, ok := d.text(n, path, "a duration")
	if !ok {
		return
	}
	if s == "0" {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.bad(n.Line, path, "invalid duration %q (want e.g. 30s, 500ms, 1m30s)", s)
	case dur < 0:
		d.bad(n.Line, path, "must not be negative, got %s", s)
	default:
		v.SetInt(int64(dur))
	}
}
