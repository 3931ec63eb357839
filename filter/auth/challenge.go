package auth

import "strings"

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
