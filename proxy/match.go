package proxy

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/config"
)

// conditions are a route's compiled request conditions besides host and prefix
// (config.Match): every one must hold. They are immutable once built, so requests share them
// without locks. A nil *conditions is a route without conditions and holds for every request.
type conditions struct {
	methods []string         // any of them (upper-case, compared exactly); empty: any method
	headers []valueCondition // name is the canonical header name
	query   []valueCondition // name is the decoded parameter name, case-sensitive
}

// valueKind is how a header or query value is compared.
type valueKind uint8

const (
	valueExact   valueKind = iota // the value equals exact (case-sensitive; may be "")
	valuePresent                  // any value, even empty
	valueRegex                    // the whole value matches regex
	valueNever                    // a regex that did not compile: holds for no request
)

// valueCondition is one header or query condition.
type valueCondition struct {
	name  string
	kind  valueKind
	exact string
	regex *regexp.Regexp // anchored at both ends
}

// newConditions compiles m; nil (and a Match with no conditions) gives nil, the route that
// costs the matcher nothing beyond its prefix lookup. Header and query conditions are sorted
// cheapest first (exact, present, then regex), then by name, so a failing request is
// usually refused before any regex runs. Two names of one header ("x-a" and "X-A") are two
// conditions on it, both of which must hold.
func newConditions(m *config.Match) *conditions {
	if m == nil || len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.Query) == 0 {
		return nil
	}
	c := &conditions{methods: slices.Clone(m.Methods)}
	for name, v := range m.Headers {
		c.headers = append(c.headers, newValueCondition(http.CanonicalHeaderKey(name), v))
	}
	for name, v := range m.Query {
		c.query = append(c.query, newValueCondition(name, v))
	}
	order := func(a, b valueCondition) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), strings.Compare(a.name, b.name))
	}
	slices.SortFunc(c.headers, order)
	slices.SortFunc(c.query, order)
	return c
}

// newValueCondition compiles one condition. A regex is matched against the whole value, so
// it is anchored: "v1" does not match "v10". It is wrapped only after it compiled on its own,
// since a wrapper could make a broken pattern compile into another meaning ("a)|(b"). Config
// validation refuses patterns that do not compile; should one reach here anyway, the
// condition holds for no request (a route must not widen because its pattern broke).
func newValueCondition(name string, v config.ValueMatch) valueCondition {
	switch {
	case v.Regex != "":
		if _, err := regexp.Compile(v.Regex); err != nil {
			return valueCondition{name: name, kind: valueNever}
		}
		re, err := regexp.Compile(`\A(?:` + v.Regex + `)\z`)
		if err != nil {
			return valueCondition{name: name, kind: valueNever}
		}
		return valueCondition{name: name, kind: valueRegex, regex: re}
	case v.Present:
		return valueCondition{name: name, kind: valuePresent}
	default:
		return valueCondition{name: name, kind: valueExact, exact: v.Exact}
	}
}

// holds reports whether r meets every condition. It allocates nothing, except to decode a
// percent-encoded or '+'-encoded query value that a regex must see.
func (c *conditions) holds(r *http.Request) bool {
	if c == nil {
		return true
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, r.Method) {
		return false
	}
	for i := range c.headers {
		if !c.headers[i].holdsForHeader(r.Header) {
			return false
		}
	}
	for i := range c.query {
		if !c.query[i].holdsForQuery(r.URL.RawQuery) {
			return false
		}
	}
	return true
}

// holdsForHeader checks the header's first field line only: "X-Canary: a" then
// "X-Canary: b" is compared as "a". Gateway API leaves a repeated header to the
// implementation and recommends the first value for a repeated query parameter; one rule for
// both is easier to predict. One line listing several values ("a, b") is one value. Header
// names were canonicalized by the server, as the condition's name was, so the lookup is
// case-insensitive and costs one map access.
func (v *valueCondition) holdsForHeader(h http.Header) bool {
	values := h[v.name]
	if len(values) == 0 {
		return false
	}
	switch v.kind {
	case valuePresent:
		return true
	case valueExact:
		return values[0] == v.exact
	case valueRegex:
		return v.regex.MatchString(values[0])
	}
	return false
}

// holdsForQuery checks the parameter's first value, as Gateway API recommends for a
// repeated parameter, read from the raw query as url.ParseQuery would list it (see
// firstQueryValue).
func (v *valueCondition) holdsForQuery(rawQuery string) bool {
	if v.kind == valueNever {
		return false
	}
	value, ok := firstQueryValue(rawQuery, v.name)
	if !ok {
		return false
	}
	switch v.kind {
	case valuePresent:
		return true
	case valueExact:
		return queryUnescapedEquals(value, v.exact)
	case valueRegex:
		if strings.IndexByte(value, '%') < 0 && strings.IndexByte(value, '+') < 0 {
			return v.regex.MatchString(value)
		}
		decoded, err := url.QueryUnescape(value)
		return err == nil && v.regex.MatchString(decoded)
	}
	return false
}

// firstQueryValue returns, still escaped, the value of the first pair of rawQuery whose key
// decodes to name, skipping the pairs url.ParseQuery skips: empty ones, those with a ';',
// and those whose key or value is not valid query escaping ("a=%zz"). So its answer is
// ParseQuery(rawQuery)[name][0], decoded by the caller, without building the map: one scan,
// no allocation. Unlike ParseQuery it sets no limit on the number of pairs, which only
// guards ParseQuery's map; this scan keeps nothing.
func firstQueryValue(rawQuery, name string) (value string, ok bool) {
	// One byte loop rather than strings.Cut per pair: queries are short, and the calls to
	// the vectorized IndexByte cost more than they saved on them (measured).
	start, equals, semicolon := 0, -1, false
	for i := 0; i <= len(rawQuery); i++ {
		if i < len(rawQuery) {
			switch rawQuery[i] {
			case '&':
			case '=':
				if equals < 0 {
					equals = i
				}
				continue
			case ';':
				semicolon = true
				continue
			default:
				continue
			}
		}
		// rawQuery[start:i] is one pair.
		if i > start && !semicolon {
			key, value := rawQuery[start:i], ""
			if equals >= 0 {
				key, value = rawQuery[start:equals], rawQuery[equals+1:i]
			}
			if queryUnescapedEquals(key, name) && validQueryEscapes(value) {
				return value, true
			}
		}
		start, equals, semicolon = i+1, -1, false
	}
	return "", false
}

// queryUnescapedEquals reports whether escaped is valid query escaping (as url.QueryUnescape
// accepts it) and decodes to want, without decoding into a new string.
func queryUnescapedEquals(escaped, want string) bool {
	if len(escaped) < len(want) {
		return false // decoding never lengthens
	}
	j := 0
	for i := 0; i < len(escaped); j++ {
		var c byte
		switch escaped[i] {
		case '%':
			if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
				return false
			}
			c = unhex(escaped[i+1])<<4 | unhex(escaped[i+2])
			i += 3
		case '+':
			c = ' '
			i++
		default:
			c = escaped[i]
			i++
		}
		if j >= len(want) || want[j] != c {
			return false
		}
	}
	return j == len(want)
}

// validQueryEscapes reports whether url.QueryUnescape accepts s: every '%' starts a
// two-digit hex escape. (isHex and unhex are path.go's.)
func validQueryEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		next := strings.IndexByte(s[i+3:], '%')
		if next < 0 {
			return true
		}
		i += 3 + next
	}
	return true
}

// comparePrecedence orders routes sharing a host and prefix as Gateway API HTTPRoute does: a
// method condition first, then more header conditions, then more query conditions. Equal
// routes keep config order (the table sorts stably).
func comparePrecedence(a, b *conditions) int {
	return cmp.Or(
		-cmp.Compare(a.methodCount(), b.methodCount()),
		-cmp.Compare(a.headerCount(), b.headerCount()),
		-cmp.Compare(a.queryCount(), b.queryCount()),
	)
}

// methodCount is 1 with a method condition, else 0: how many methods it lists does not
// make a route more specific.
func (c *conditions) methodCount() int {
	if c == nil || len(c.methods) == 0 {
		return 0
	}
	return 1
}

func (c *conditions) headerCount() int {
	if c == nil {
		return 0
	}
	return len(c.headers)
}

func (c *conditions) queryCount() int {
	if c == nil {
		return 0
	}
	return len(c.query)
}
