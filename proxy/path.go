package proxy

import (
	"net/url"
	"strings"
)

// The request path is canonicalized once, in its escaped form, and that one string is both
// what routes are matched against and what is forwarded upstream. Matching the decoded path
// (as net/http's r.URL.Path gives it) and forwarding it would turn "%2F" into a separator
// the route never saw; matching one form and forwarding another would let the upstream see
// a path the route did not. See canonicalPath for the rules.

// Byte classes of the escaped-path alphabet (RFC 3986 3.3 and 2.1-2.3).
const (
	pcEncode     uint8 = iota // must be percent-encoded: space, '"', '#', '?', '[', '\\', non-ASCII...
	pcUnreserved              // ALPHA DIGIT - . _ ~ : never encoded in the canonical form
	pcReserved                // sub-delims, ':' and '@': literal as sent, and "%21" stays "%21"
	pcSlash                   // '/': the only separator
	pcPercent                 // '%': starts a pct-encoded byte
	pcControl                 // C0 controls and DEL, raw or encoded: refused
)

var pathClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = pcControl
	}
	t[0x7f] = pcControl
	for c := 'a'; c <= 'z'; c++ {
		t[c] = pcUnreserved
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = pcUnreserved
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = pcUnreserved
	}
	for _, c := range []byte("-._~") {
		t[c] = pcUnreserved
	}
	for _, c := range []byte("!$&'()*+,;=:@") {
		t[c] = pcReserved
	}
	t['/'] = pcSlash
	t['%'] = pcPercent
	return t
}()

// pchar marks the bytes a canonical path holds as they are (unreserved and reserved), for
// the one-pass check's inner loop.
var pchar = func() (t [256]bool) {
	for c, k := range pathClass {
		t[c] = k == pcUnreserved || k == pcReserved
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// requestPath returns the escaped path of a server request's URL as the client spelled it,
// for canonicalPath: u.RawPath when net/url kept one (the client's spelling is not net/url's
// own), else u.EscapedPath(), which then only re-encodes u.Path and does not allocate for a
// plain path. u.EscapedPath() alone falls back to re-encoding the decoded path when the
// client's spelling has a byte net/url does not keep raw ('"', '|', '\\', non-ASCII, ...),
// which turns the client's "%2F" into real slashes ("/a%2F..%2Fb|" into "/a/../b%7C");
// canonicalPath encodes such bytes itself. u must be as net/http parsed it: a RawPath left
// stale by a change to Path would be used as is.
func requestPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath()
}

// canonicalPath returns the canonical form of an escaped, origin-form request path (what
// r.URL.EscapedPath returns), or ok=false for a path that must be answered 400.
//
// The canonical form is RFC 3986 6.2.2 normalization plus dot-segment removal:
//   - percent-encoded unreserved characters are decoded ("%41" is "A", "%2e%2e" is ".."),
//     every other escape stays encoded with upper-case hex ("%2f" becomes "%2F"), and a
//     raw byte that has no place in a path (space, '"', '[', '\\', non-ASCII, ...) is
//     encoded. "%2F" and "%5C" are thus never separators: they stay inside their segment,
//     for routing and upstream alike (hasEncodedSlash finds them). Reserved characters
//     ("!$&'()*+,;=:@") are left as sent, encoded or not: RFC 3986 does not make "%3B"
//     and ";" equivalent, and servlet containers do not treat them alike;
//   - "." and ".." segments are resolved, never above the root, and empty segments
//     (repeated slashes) dropped;
//   - the result is rooted ("" and "a/b" become "/" and "/a/b"), and, unless it is "/",
//     ends in '/' exactly when the input does: the path.Clean rule plus net/http
//     ServeMux's trailing slash, as before, so "/a/b/.." is "/a" and "/a/b/../" is "/a/".
//
// ok is false, for input no upstream should be asked about, when the path has:
//   - a '%' not followed by two hex digits ("%zz", a truncated "%4"): ambiguous, since
//     servers disagree on what it means;
//   - a C0 control or DEL, raw or encoded ("%00" NUL, "%0D%0A" CR LF, ...): NUL truncates
//     paths in C code and CR LF splits headers and log lines wherever an upstream decodes
//     the path into one; no legitimate path needs them;
//   - an overlong UTF-8 sequence, raw or encoded ("%C0%AE" for '.', "%C0%AF" and
//     "%E0%80%AF" for '/'): never valid UTF-8, only ever sent to smuggle a dot or a slash
//     past a proxy to a lenient decoder.
//
// The result is a fixed point (canonicalPath of it returns it unchanged), and an already
// canonical path (the common case, "/api/users/42") is returned as is, checked in one pass
// without allocating. The cost is linear in len(escaped) in every case.
func canonicalPath(escaped string) (string, bool) {
	if isCanonical(escaped) {
		return escaped, true
	}
	return canonicalize(escaped)
}

// isCanonical reports whether p is already canonical: rooted, only canonical bytes and
// escapes, and no empty (but a trailing), "." or ".." segment.
func isCanonical(p string) bool {
	if p == "" || p[0] != '/' || len(p) > 1 && (p[1] == '/' || isDotSegmentStart(p[1:])) {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if pchar[c] {
			continue
		}
		switch c {
		case '/':
			// Check the segment this slash opens; a few bytes of look-ahead keep it one pass.
			if i+1 == len(p) {
				return true
			}
			if p[i+1] == '/' || isDotSegmentStart(p[i+1:]) {
				return false
			}
		case '%':
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return false
			}
			b := unhex(p[i+1])<<4 | unhex(p[i+2])
			if k := pathClass[b]; k == pcUnreserved || k == pcControl || overlong(b, p, i+3) {
				return false
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

// isDotSegmentStart reports whether rest, the path after a slash, starts with a literal "."
// or ".." segment.
func isDotSegmentStart(rest string) bool {
	if rest[0] != '.' {
		return false
	}
	if len(rest) == 1 || rest[1] == '/' {
		return true
	}
	return rest[1] == '.' && (len(rest) == 2 || rest[2] == '/')
}

// canonicalize is canonicalPath's slow path: one pass writing the canonical form into a
// buffer that always holds "/" followed by the finished segments, each ending in '/', and
// then the bytes of the segment being read. ".." drops the previous segment by scanning
// back over exactly the bytes it drops, so each byte is written once and dropped at most
// once: linear however the dot segments nest.
func canonicalize(p string) (string, bool) {
	buf := make([]byte, 1, len(p)+1)
	buf[0] = '/'
	seg := 1 // where the current segment starts in buf
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			switch s := buf[seg:]; {
			case len(s) == 0: // repeated slash (or the leading one)
			case len(s) == 1 && s[0] == '.':
				buf = buf[:seg]
			case len(s) == 2 && s[0] == '.' && s[1] == '.':
				buf = buf[:seg]
				if seg > 1 { // never above the root
					buf = buf[:lastSlash(buf[:seg-1])+1]
				}
			case i < len(p):
				buf = append(buf, '/')
			}
			seg = len(buf)
			continue
		}
		c := p[i]
		switch pathClass[c] {
		case pcUnreserved, pcReserved:
			buf = append(buf, c)
			continue
		case pcControl:
			return "", false
		case pcPercent:
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", false
			}
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch pathClass[c] {
			case pcUnreserved:
				buf = append(buf, c)
				continue
			case pcControl:
				return "", false
			}
		}
		// A byte that stays (or becomes) percent-encoded.
		if overlong(c, p, i+1) {
			return "", false
		}
		buf = append(buf, '%', upperHex[c>>4], upperHex[c&15])
	}
	// A trailing '/' left by a final "." or ".." segment goes (the path.Clean rule); one the
	// input ends with stays.
	if n := len(buf); n > 1 && buf[n-1] == '/' && (p == "" || p[len(p)-1] != '/') {
		buf = buf[:n-1]
	}
	return string(buf), true
}

// lastSlash returns the index of the last '/' in b (b always starts with one).
func lastSlash(b []byte) int {
	i := len(b) - 1
	for b[i] != '/' {
		i--
	}
	return i
}

// overlong reports whether byte b, followed by the byte at p[next:] (raw or percent-encoded),
// starts an overlong UTF-8 sequence: a lead byte and a first continuation byte that together
// encode a code point in fewer bytes than used (RFC 3629 3, "C0 80".."C1 BF",
// "E0 80".."E0 9F", "F0 80".."F0 8F").
func overlong(b byte, p string, next int) bool {
	var hi byte // the highest first continuation byte that makes b overlong
	switch b {
	case 0xC0, 0xC1:
		hi = 0xBF
	case 0xE0:
		hi = 0x9F
	case 0xF0:
		hi = 0x8F
	default:
		return false
	}
	if next >= len(p) {
		return false
	}
	c := p[next]
	if c == '%' {
		if next+2 >= len(p) || !isHex(p[next+1]) || !isHex(p[next+2]) {
			return false // an invalid escape is refused on its own
		}
		c = unhex(p[next+1])<<4 | unhex(p[next+2])
	}
	return 0x80 <= c && c <= hi
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// unhex returns the value of hex digit c (which must be one).
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// hasEncodedSlash reports whether a canonical path has an encoded slash or backslash ("%2F",
// "%5C"): a separator to any upstream that decodes before it splits, which routes with
// encoded_slashes: reject refuse. Canonical escapes are upper-case, so two exact searches do.
func hasEncodedSlash(canonical string) bool {
	for i := strings.IndexByte(canonical, '%'); i >= 0 && i+2 < len(canonical); {
		if e := canonical[i+1 : i+3]; e == "2F" || e == "5C" {
			return true
		}
		j := strings.IndexByte(canonical[i+3:], '%')
		if j < 0 {
			break
		}
		i += 3 + j
	}
	return false
}

// forwardURLPath returns the url.URL Path and RawPath that make URL.EscapedPath (what the
// request line is written from) return canonical exactly: path is canonical decoded, and
// rawPath is canonical when it has an escape or one of "!'()*", else "". Those five are
// legal, and may be meaningful, in a path, but net/url's own encoding of Path would send
// them as "%21"...; without them or an escape, that encoding is canonical itself. net/url
// honours a RawPath that holds only pchar, '/' and escapes and decodes to Path, which a
// canonical path always is.
//
// It allocates only when canonical has an escape (to decode it).
func forwardURLPath(canonical string) (path, rawPath string) {
	raw := false
	for i := 0; i < len(canonical); i++ {
		switch canonical[i] {
		case '%':
			p, err := url.PathUnescape(canonical)
			if err != nil { // not canonical: let net/url re-encode rather than forward junk
				return canonical, ""
			}
			return p, canonical
		case '!', '\'', '(', ')', '*':
			raw = true
		}
	}
	if raw {
		return canonical, canonical
	}
	return canonical, ""
}

// stripPrefix returns what a strip_prefix route forwards for canonical path p, given the
// route's prefix as the table matched it: the rest of p after the prefix, rooted ("/api"
// and "/api/" both forward "/"). p must have matched prefix, so the rest is empty or
// starts with '/', and is itself canonical. It never allocates.
func stripPrefix(p, prefix string) string {
	if prefix == "/" {
		return p
	}
	if rest := p[len(prefix):]; rest != "" {
		return rest
	}
	return "/"
}

// canonicalPrefix returns the canonical escaped form of a configured route prefix, a plain
// (unescaped) path such as "/api/users" or "/café": the form a request's canonical path
// has when it is the prefix. Bytes outside the path alphabet are percent-encoded (so a '%'
// in a prefix is a literal percent sign); reserved characters stay literal, as clients
// send them. ok is false for a prefix no canonical request path can ever match (a control
// character or an overlong UTF-8 sequence), whose escaped form is still returned.
func canonicalPrefix(plain string) (string, bool) {
	esc := plain
	for i := 0; i < len(plain); i++ {
		if c := pathClass[plain[i]]; c != pcUnreserved && c != pcReserved && c != pcSlash {
			esc = escapePlain(plain)
			break
		}
	}
	c, ok := canonicalPath(esc)
	if !ok {
		return esc, false
	}
	return c, true
}

// escapePlain percent-encodes every byte of a plain path but pchar and '/'.
func escapePlain(plain string) string {
	b := make([]byte, 0, len(plain)+16)
	for i := 0; i < len(plain); i++ {
		switch c := plain[i]; pathClass[c] {
		case pcUnreserved, pcReserved, pcSlash:
			b = append(b, c)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(b)
}
