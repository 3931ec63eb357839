package config

import (
	"fmt"
	"hash/maphash"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FieldError is one problem in a config file, located by line and field path so a user can
// go straight to it: `routes.yaml:14: routes[2].lb: unknown policy "least_con" (...)`.
type FieldError struct {
	File string // file name as given to Parse or Load
	Line int    // 1-based; 0 when YAML could not say where
	Path string // field path such as routes[2].lb; empty for the whole document
	Msg  string
}

// Error formats the error as file:line: path: message, leaving out the parts that are empty.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by line, so one run of the gateway (or
// `switchyard validate`) shows them all instead of one per edit-and-retry cycle.
type Errors []*FieldError

// Error prints one error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual *FieldError values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors bounds what one file reports. A hundred lines are more than anyone reads before
// fixing the first ones, and anchors and aliases can make a few hundred bytes repeat one
// mistake at a hundred thousand paths (issue #11, item 16).
const maxErrors = 100

// errorList collects the errors of one file: exact repeats (an alias repeats its target's
// mistakes at the same line) are dropped, the first maxErrors distinct ones kept, and the
// rest only counted, so a hostile file costs bounded memory and output.
type errorList struct {
	file string
	errs Errors
	seen map[uint64]struct{} // hashes of every distinct error, kept or not
	seed maphash.Seed
	more int // distinct errors beyond maxErrors
}

func newErrorList(file string) *errorList {
	return &errorList{file: file, seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
}

func (l *errorList) add(line int, path, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxQuoted {
			args[i] = shorten(s)
		}
	}
	e := FieldError{File: l.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
	h := maphash.Comparable(l.seed, e)
	if _, dup := l.seen[h]; dup {
		return
	}
	l.seen[h] = struct{}{}
	if len(l.errs) >= maxErrors {
		l.more++
		return
	}
	l.errs = append(l.errs, &e)
}

// message is text the package wrote, passed as a format argument without being shortened
// as a value from the file would be.
type message string

// maxQuoted bounds how much of a value from the file an error message repeats: enough to
// recognise it, not a megabyte-long key echoed back.
const maxQuoted = 80

// shorten cuts s to maxQuoted bytes on a rune boundary and says how long it was.
func shorten(s string) string {
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:cut], len(s))
}

// result returns the errors sorted by line, ending with a line that says how many more
// there were; the stable sort keeps discovery order within a line, which is field order
// for the decoder and check order for the validator.
func (l *errorList) result() Errors {
	if len(l.errs) == 0 {
		return nil
	}
	out := slices.Clone(l.errs)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	if l.more > 0 {
		out = append(out, &FieldError{File: l.file, Msg: fmt.Sprintf("... and %d more errors (only the first %d are listed)", l.more, maxErrors)})
	}
	return out
}

// yamlLine matches the "yaml: line N: msg" form go.yaml.in/yaml/v3 gives syntax errors; the
// library has no structured error type for them.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError turns a YAML parser error into a FieldError with the line the parser reported.
func syntaxError(file string, err error) *FieldError {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return &FieldError{File: file, Msg: "invalid YAML: " + msg}
	}
	line, _ := strconv.Atoi(m[1]) // empty when the parser gave no line: 0
	if line > 0 && isParserProblem(m[2]) {
		line++
	}
	return &FieldError{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
}

// isParserProblem reports the messages of yaml's parser stage (parserc.go), as opposed to
// its scanner. yaml.v3's parser.fail adds 1 to the 0-based mark only for scanner errors, so
// parser errors arrive one line early ("did not find expected key" on line 2 says line 1).
func isParserProblem(msg string) bool {
	for _, p := range []string{"did not find expected", "found undefined tag handle", "found duplicate %", "found incompatible YAML document", "expected "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// suggest returns the candidate closest to s when it is close enough to be a likely typo, or
// "". Comparison ignores case and underscores count as ordinary letters, so "stripPrefix"
// finds "strip_prefix".
func suggest(s string, candidates []string) string {
	best, bestDist := "", -1
	limit := max(2, len(s)/3)
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if abs(len(s)-len(c)) > limit {
			continue // the distance is at least the difference in length: too far anyway
		}
		d := editDistance(ls, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 || bestDist > limit || bestDist >= len(s) {
		return ""
	}
	return best
}

func abs(n int) int { return max(n, -n) }

// editDistance is the Levenshtein distance. It is a dozen lines, so a module for it would
// cost more (another go.mod entry for every engineer) than it saves.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
