package cors

import (
	"fmt"
	"strings"
)

// originSet is the compiled allow_origins list.
type originSet struct {
	any bool // "*": every origin except "null"
	// exact maps each listed origin, normalized, to its grant; a map because a list of
	// hundreds of origins must not cost a scan per request.
	exact     map[string]*grant
	wildcards []wildcardOrigin
}

// wildcardOrigin is "scheme://*.suffix[:port]": one or more DNS labels in place of the "*",
// under suffix, with the same scheme and port.
type wildcardOrigin struct {
	scheme string // "https://"
	suffix string // ".example.com"
	port   string // ":8443", or "" for the scheme's default port
}

// normalizeOrigin checks one allow_origins entry and returns it as browsers serialize
// origins (RFC 6454 section 6.1): lower-case scheme and host, no default port, no path.
func normalizeOrigin(s string) (string, error) {
	if s == "null" || s == "*" {
		return s, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", s)
	}
	scheme = strings.ToLower(scheme)
	if !isScheme(scheme) {
		return "", fmt.Errorf("%q has an invalid scheme", s)
	}
	host, port := splitPort(rest)
	if host == "" || strings.ContainsAny(host, "/?#@ \t") {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port], no path, no user)", s)
	}
	if port != "" {
		if !isDigits(port[1:]) {
			return "", fmt.Errorf("%q has an invalid port", s)
		}
		if scheme == "https" && port == ":443" || scheme == "http" && port == ":80" {
			port = "" // browsers leave the default port out of Origin
		}
	}
	return scheme + "://" + strings.ToLower(host) + port, nil
}

// parseWildcard reads a normalized origin with a "*" as its first host label.
func parseWildcard(origin string) (wildcardOrigin, error) {
	scheme, rest, _ := strings.Cut(origin, "://")
	host, port := splitPort(rest)
	suffix, ok := strings.CutPrefix(host, "*")
	if !ok || !strings.HasPrefix(suffix, ".") || len(suffix) < 2 || strings.Contains(suffix, "*") || !isHostname(suffix[1:]) {
		return wildcardOrigin{}, fmt.Errorf("%q: a wildcard origin is scheme://*.domain[:port], one leading \"*\" label", origin)
	}
	return wildcardOrigin{scheme: scheme + "://", suffix: suffix, port: port}, nil
}

// match reports whether origin (as the client sent it) is scheme://labels.suffix[:port].
func (w *wildcardOrigin) match(origin string) bool {
	rest, ok := strings.CutPrefix(origin, w.scheme)
	if !ok {
		return false
	}
	if w.port != "" {
		if rest, ok = strings.CutSuffix(rest, w.port); !ok {
			return false
		}
	}
	labels, ok := strings.CutSuffix(rest, w.suffix)
	// isHostname refuses ':' too, so an origin with a port matches only a pattern with
	// that port, and one without only a pattern without.
	return ok && labels != "" && isHostname(labels)
}

// splitPort splits "host:port" into host and ":port"; a bracketed IPv6 host keeps its colons.
func splitPort(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i:], ']') >= 0 {
		return hostport, ""
	}
	return hostport[:i], hostport[i:]
}

// isHostname reports whether s is dot-separated, non-empty labels of lower-case letters,
// digits and hyphens (origins carry hosts in their ASCII, punycode form).
func isHostname(s string) bool {
	if s == "" {
		return false
	}
	labelLen := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if labelLen == 0 {
				return false
			}
			labelLen = 0
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			labelLen++
		default:
			return false
		}
	}
	return labelLen > 0
}

func isScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
