package config

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Limits on a match regex. RE2 runs in time linear in the input, but the compiled program is
// kept per route and walked per request: a pattern of a few hundred bytes covers any real
// header or query condition, and a bound on the program keeps `(a{0,1000}){0,1000}`-style
// blow-ups (which Go refuses past 1000 repeats, but nests) out of the table.
const (
	MaxRegexBytes = 1024  // longest pattern accepted
	maxRegexInsts = 10000 // largest compiled program accepted
)

// wildcardLabel starts a wildcard host: "*.example.com" matches one or more labels before
// example.com, as Gateway API's wildcard hostnames do.
const wildcardLabel = "*."

// match validates a route's conditions, upper-casing methods in place.
func (v *validator) match(p string, m *Match) {
	if m == nil {
		return
	}
	if v.set(p+".methods") && len(m.Methods) == 0 {
		v.errorf(p+".methods", "must not be empty (leave it out to match every method)")
	}
	for i, method := range m.Methods {
		ip := fmt.Sprintf("%s.methods[%d]", p, i)
		if !v.set(ip) {
			continue
		}
		up := strings.ToUpper(method)
		switch {
		case !isToken(method):
			v.errorf(ip, "invalid method %q: want an HTTP token such as GET", method)
		case slices.Contains(m.Methods[:i], up):
			v.errorf(ip, "duplicate method %q", up)
		}
		m.Methods[i] = up
	}
	v.check(p+".headers", v.sizes[p+".headers"] > 0, "must not be empty (leave it out for no header condition)")
	firstName := map[string]string{} // lower-case name -> name as first written
	for _, name := range sortedKeys(m.Headers) {
		hp := join(p+".headers", name)
		if !httpguts.ValidHeaderFieldName(name) {
			v.errorf(hp, "invalid header name %q", name)
		} else if strings.EqualFold(name, "Host") {
			// net/http moves Host out of the header map, so the condition could never hold.
			v.errorf(hp, "Host is matched by the route's host: key, not by a header condition")
		} else if first, dup := firstName[strings.ToLower(name)]; dup {
			v.errorf(hp, "duplicate header %q: same as %q (header names are case-insensitive)", name, first)
		} else {
			firstName[strings.ToLower(name)] = name
		}
		v.valueMatch(hp, m.Headers[name])
	}
	v.check(p+".query", v.sizes[p+".query"] > 0, "must not be empty (leave it out for no query condition)")
	for _, name := range sortedKeys(m.Query) {
		qp := join(p+".query", name)
		if name == "" {
			v.errorf(qp, "empty query parameter name")
		}
		v.valueMatch(qp, m.Query[name])
	}
}

// valueMatch checks one condition: exactly one of exact, present, regex written.
func (v *validator) valueMatch(p string, c ValueMatch) {
	var written []string
	for _, k := range []string{"exact", "present", "regex"} {
		if v.set(p + "." + k) {
			written = append(written, k)
		}
	}
	switch len(written) {
	case 0:
		v.errorf(p, "needs one of exact, present, regex (or a plain value for exact)")
		return
	case 1:
	default:
		v.errorf(p, "has %s (want exactly one of exact, present, regex)", strings.Join(written, " and "))
		return
	}
	v.check(p+".present", c.Present, "must be true when written (leave the condition out to match any request)")
	if v.set(p + ".regex") {
		if c.Regex == "" {
			v.errorf(p+".regex", "must not be empty (use present: true for any value)")
		} else if err := checkRegex(c.Regex); err != nil {
			v.errorf(p+".regex", "%v", err)
		}
	}
}

// checkRegex compiles a match regex as the matcher will (RE2 syntax) within the size limits.
func checkRegex(re string) error {
	if len(re) > MaxRegexBytes {
		return fmt.Errorf("regex longer than %d bytes", MaxRegexBytes)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("invalid regex: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return fmt.Errorf("invalid regex: %v", err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return fmt.Errorf("invalid regex: %v", err)
	}
	if len(prog.Inst) > maxRegexInsts {
		return fmt.Errorf("regex too complex (compiles to %d instructions, at most %d)", len(prog.Inst), maxRegexInsts)
	}
	return nil
}

// conditionsKey describes a route's host, prefix and conditions so that two routes that
// would match exactly the same requests get the same key: methods as a set, header names
// case-insensitively, query names as written, each condition by kind and value.
func conditionsKey(r *Route) string {
	var b strings.Builder
	b.WriteString(r.Host)
	b.WriteByte(0)
	b.WriteString(r.Prefix)
	m := r.Match
	if m == nil {
		m = &Match{}
	}
	methods := slices.Clone(m.Methods)
	slices.Sort(methods)
	methods = slices.Compact(methods)
	b.WriteString("\x00m")
	for _, s := range methods {
		b.WriteByte(0)
		b.WriteString(s)
	}
	writeConditions(&b, "h", m.Headers, strings.ToLower)
	writeConditions(&b, "q", m.Query, func(s string) string { return s })
	return b.String()
}

func writeConditions(b *strings.Builder, kind string, conds map[string]ValueMatch, name func(string) string) {
	keys := make([]string, 0, len(conds))
	for k, c := range conds {
		var value string
		switch {
		case c.Present:
			value = "p"
		case c.Regex != "":
			value = "r" + c.Regex
		default:
			value = "e" + c.Exact
		}
		keys = append(keys, fmt.Sprintf("%q=%q", name(k), value))
	}
	sort.Strings(keys)
	b.WriteString("\x00" + kind)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
	}
}

// sortedKeys returns a map's keys in order, so errors come out in the same order each run.
func sortedKeys[T any](m map[string]T) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
