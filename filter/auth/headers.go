package auth

import (
	"fmt"
	"net/textproto"
	"strings"
)

// Quote returns s as an RFC 9110 quoted-string for a WWW-Authenticate parameter (realm,
// header): backslash and double quote are escaped, and control characters, which a
// quoted-string cannot hold and which could split a header, become spaces. Mechanisms
// build their challenges with it once, at construction.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 && c != '\t' || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ValidHeaderName reports whether s is a non-empty RFC 9110 token, the only thing a header
// field name may be; mechanisms check the header names of their config with it.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// reservedHeaders frame the message or the connection; an identity header set to one of
// them would change how the upstream reads the request, not who it thinks sent it.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// CheckIdentityHeader reports why name cannot be a header a mechanism sets upstream
// (name_header, user_header, claims_to_headers...), or nil: it must be a valid header name
// and not one that frames the message or the connection.
func CheckIdentityHeader(name string) error {
	if !ValidHeaderName(name) {
		return fmt.Errorf("%q is not a valid header name", name)
	}
	if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
		return fmt.Errorf("%q frames the request or the connection and cannot carry an identity", name)
	}
	return nil
}
