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
	// cors is set when the route answers CORS preflights (its cors: block is on): a
	// preflight is then matched by the method it asks for (see holds).
	cors bool
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
// conditions on it, both of which must hold. cors tells that the route answers CORS
// preflights (see holds).
func newConditions(m *config.Match, cors bool) *conditions {
	if m == nil || len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.Query) == 0 {
		return nil
	}
	c := &conditions{methods: slices.Clone(m.Methods), cors: cors}
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

// answersPreflights reports whether a route with CORS block c answers CORS preflights
// itself, as filter/cors does when c is set and not disabled.
func answersPreflights(c *config.CORS) bool {
	return c != nil && (c.Enabled == nil || *c.Enabled)
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

// holds reports whether r meets every condition. query holds the request's query values for
// the table's parameter names, and queryIndexes the index there of each of c.query's names
// (see Table); query is nil only when c has no query condition. It allocates nothing, except
// to decode a percent-encoded or '+'-encoded query value that a regex must see, and in the
// query scan with many names (see queryValues.scan).
//
// A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) to a route that
// answers preflights holds when the method it asks for meets the methods condition, whatever
// the header and query conditions: a browser sends a preflight without the request's custom
// headers and may not be the one choosing its query, and matching it by its own method
// (OPTIONS) would send it to another route, or to none, instead of the route whose CORS
// policy must answer it. A preflight that fails that test is still matched as any request.
func (c *conditions) holds(r *http.Request, query *queryValues, queryIndexes []int) bool {
	if c == nil {
		return true
	}
	if c.cors && r.Method == http.MethodOptions && c.preflightHolds(r.Header) {
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
		if c.query[i].kind == valueNever {
			return false
		}
		value, ok := query.value(queryIndexes[i], r.URL.RawQuery)
		if !ok || !c.query[i].holdsForQueryValue(value) {
			return false
		}
	}
	return true
}

// preflightHolds reports whether an OPTIONS request with header h is a CORS preflight whose
// requested method (the first Access-Control-Request-Method line, compared exactly as
// methods are) meets the methods condition. As filter/cors, it needs Origin present.
func (c *conditions) preflightHolds(h http.Header) bool {
	requested := h["Access-Control-Request-Method"]
	if len(requested) == 0 || len(h["Origin"]) == 0 {
		return false
	}
	return len(c.methods) == 0 || slices.Contains(c.methods, requested[0])
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

// holdsForQueryValue checks the parameter's first value, as Gateway API recommends for a
// repeated parameter, still escaped as queryValues keeps it.
func (v *valueCondition) holdsForQueryValue(value string) bool {
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

// queryNames is the set of query parameter names a table's conditions use, each at its
// index in a request's queryValues. It is built with the table and never changes.
type queryNames struct {
	names []string
	// index finds a name's index when there are too many names to compare one by one;
	// nil with few names.
	index map[string]int
	// maxLen is the length of the longest name: a longer decoded key is none of them, so a
	// key is decoded no further than that.
	maxLen int
}

// linearQueryNames is the most names compared one by one; past it, a map finds them. It is
// also how many values a queryValues holds without allocating.
const linearQueryNames = 8

// add returns the index of name, adding it if new.
func (n *queryNames) add(name string) int {
	if i := n.lookup(name); i >= 0 {
		return i
	}
	n.names = append(n.names, name)
	n.maxLen = max(n.maxLen, len(name))
	switch {
	case n.index != nil:
		n.index[name] = len(n.names) - 1
	case len(n.names) > linearQueryNames:
		n.index = make(map[string]int, len(n.names))
		for i, name := range n.names {
			n.index[name] = i
		}
	}
	return len(n.names) - 1
}

// lookup returns the index of the decoded name, or -1.
func (n *queryNames) lookup(name string) int {
	if n.index != nil {
		if i, ok := n.index[name]; ok {
			return i
		}
		return -1
	}
	return slices.Index(n.names, name)
}

// queryValues holds one request's first value (still escaped) of each of a table's query
// names. The query is scanned at most once, when a condition first asks for a value, so a
// request reaching many routes with query conditions costs one pass over its query, and one
// reaching none costs nothing. It lives on the matcher's stack: with up to linearQueryNames
// names it allocates nothing. With more, it lists the names the query has, each once, so
// what it allocates grows with the request's query, and past 512 names by one bit a name.
type queryValues struct {
	names *queryNames
	scans int // times the query was scanned: 0 or 1 (tests check it)
	found int // names with a value
	small [linearQueryNames]queryValue
	// more is the first value of each name the query has, by name index, with more than
	// linearQueryNames names.
	more []indexedQueryValue
}

// queryValue is one name's first value, if any.
type queryValue struct {
	value string
	ok    bool
}

// indexedQueryValue is the first value of the name at index.
type indexedQueryValue struct {
	index int
	value string
}

// value returns the first value of the name at index i in rawQuery, the request's query,
// scanning it on first use.
func (q *queryValues) value(i int, rawQuery string) (string, bool) {
	if q.scans == 0 {
		q.scan(rawQuery)
	}
	if q.names.index == nil {
		return q.small[i].value, q.small[i].ok
	}
	at, ok := slices.BinarySearchFunc(q.more, i, func(v indexedQueryValue, i int) int { return cmp.Compare(v.index, i) })
	if !ok {
		return "", false
	}
	return q.more[at].value, true
}

// scan records the first value of each name in rawQuery as url.ParseQuery would list it:
// pairs are separated by '&'; empty pairs, pairs with a ';' and pairs whose key or value is
// not valid query escaping ("a=%zz") are skipped; keys are compared decoded, values kept
// escaped. It stops once every name has a value. Unlike ParseQuery it sets no limit on the
// number of pairs, which only guards ParseQuery's map. It allocates only with more than
// linearQueryNames names (the list of the names the query has, and past 512 names a bitmap
// of them), or with a name longer than its stack buffer.
func (q *queryValues) scan(rawQuery string) {
	q.scans++
	names := q.names
	var stackBuffer [64]byte
	keyBuffer := stackBuffer[:]
	if names.index != nil && names.maxLen > len(stackBuffer) {
		keyBuffer = make([]byte, names.maxLen)
	}
	keyBuffer = keyBuffer[:min(names.maxLen, len(keyBuffer))]
	// seen marks, with many names, those already in more: a query repeating them costs no
	// more than one naming each once.
	var stackSeen [8]uint64
	seen := stackSeen[:]
	if names.index != nil && len(names.names) > 64*len(stackSeen) {
		seen = make([]uint64, (len(names.names)+63)/64)
	}
	// Pairs are cut with the vectorized IndexByte: a long query is what costs, and on one
	// of 64 KiB it is several times as fast as a byte loop.
	for rest := rawQuery; rest != "" && q.found < len(names.names); {
		pair := rest
		if i := strings.IndexByte(rest, '&'); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		key, value := pair, ""
		if i := strings.IndexByte(pair, '='); i >= 0 {
			key, value = pair[:i], pair[i+1:]
		}
		at := names.find(key, keyBuffer)
		if at < 0 || !validQueryEscapes(value) {
			continue
		}
		switch {
		case names.index == nil:
			if v := &q.small[at]; !v.ok {
				*v = queryValue{value: value, ok: true}
				q.found++
			}
		case seen[at/64]&(1<<(at%64)) == 0:
			seen[at/64] |= 1 << (at % 64)
			q.more = append(q.more, indexedQueryValue{index: at, value: value})
			q.found++
		}
	}
	slices.SortFunc(q.more, func(a, b indexedQueryValue) int { return cmp.Compare(a.index, b.index) })
}

// find returns the index of the name the escaped key decodes to, or -1 (also when key is
// not valid query escaping). With few names key is compared with each, without decoding;
// with many it is decoded into buffer, of len maxLen, and looked up.
func (n *queryNames) find(key string, buffer []byte) int {
	if n.index == nil {
		for i, name := range n.names {
			if queryUnescapedEquals(key, name) {
				return i
			}
		}
		return -1
	}
	decoded, ok := unescapeQueryInto(buffer, key)
	if !ok {
		return -1
	}
	// string(buffer[:decoded]) is only looked up, never copied.
	if i, ok := n.index[string(buffer[:decoded])]; ok {
		return i
	}
	return -1
}

// unescapeQueryInto decodes escaped, which must be valid query escaping (as
// url.QueryUnescape accepts it), into buffer and returns the decoded length; ok is false
// when escaped is not valid escaping or decodes to more than len(buffer) bytes (then it is
// none of the names buffer is sized for).
func unescapeQueryInto(buffer []byte, escaped string) (n int, ok bool) {
	if len(escaped) > 3*len(buffer) {
		return 0, false // decoding shortens three bytes to one at most
	}
	for i := 0; i < len(escaped); n++ {
		c, next, valid := queryByte(escaped, i)
		if !valid {
			return 0, false
		}
		i = next
		if n >= len(buffer) {
			return 0, false
		}
		buffer[n] = c
	}
	return n, true
}

// queryUnescapedEquals reports whether escaped is valid query escaping (as url.QueryUnescape
// accepts it) and decodes to want, without decoding into a new string.
func queryUnescapedEquals(escaped, want string) bool {
	if len(escaped) < len(want) {
		return false // decoding never lengthens
	}
	j := 0
	for i := 0; i < len(escaped); j++ {
		c, next, valid := queryByte(escaped, i)
		if !valid {
			return false
		}
		i = next
		if j >= len(want) || want[j] != c {
			return false
		}
	}
	return j == len(want)
}

// queryByte decodes the query-escaped byte at escaped[i] ("%XX", "+" for a space, or itself)
// and returns it with the index after it; valid is false for a malformed escape.
func queryByte(escaped string, i int) (c byte, next int, valid bool) {
	switch escaped[i] {
	case '%':
		if i+2 >= len(escaped) || !isHex(escaped[i+1]) || !isHex(escaped[i+2]) {
			return 0, i, false
		}
		return unhex(escaped[i+1])<<4 | unhex(escaped[i+2]), i + 3, true
	case '+':
		return ' ', i + 1, true
	}
	return escaped[i], i + 1, true
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
