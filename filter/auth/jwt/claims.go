package jwt

import (
	"encoding/json"
	"strconv"
	"strings"

	jwtv5 "github.com/golang-jwt/jwt/v5"
)

// claimHeader is one claims_to_headers entry.
type claimHeader struct {
	claim  string
	header string // canonical
}

// requiredClaim is one required_claims entry.
type requiredClaim struct {
	claim string
	value string
}

// hasClaim reports whether the claim holds want: a string equal to it or, as OAuth scopes
// are sent, listing it among space-separated words; an array with an element equal to
// it; a number or boolean whose JSON text is it.
func hasClaim(claims jwtv5.MapClaims, name, want string) bool {
	switch v := claims[name].(type) {
	case string:
		if v == want {
			return true
		}
		for word := range strings.FieldsSeq(v) {
			if word == want {
				return true
			}
		}
	case []any:
		for _, element := range v {
			if s, ok := scalarText(element); ok && s == want {
				return true
			}
		}
	default:
		if s, ok := scalarText(v); ok {
			return s == want
		}
	}
	return false
}

// scalarText is a string, number or boolean claim's text; ok is false for anything else.
// Numbers keep their JSON text (the parser decodes them as json.Number).
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case float64: // only when a parser without UseNumber produced the claims
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// headerValue is the upstream header value for a claim: scalars as text, arrays of scalars
// joined by ","; ok is false for objects, nested arrays, null, absent claims, values a
// header must not carry (control bytes, which could split or smuggle headers), and arrays
// with an element holding ",": joined, ["a,b"] would reach the upstream as two values.
func headerValue(v any) (string, bool) {
	text, ok := scalarText(v)
	if !ok {
		list, isList := v.([]any)
		if !isList || len(list) == 0 {
			return "", false
		}
		var b strings.Builder
		for i, element := range list {
			s, ok := scalarText(element)
			if !ok || strings.Contains(s, ",") {
				return "", false
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s)
		}
		text = b.String()
	}
	if text == "" || !cleanText(text) {
		return "", false
	}
	return text, true
}

// cleanText reports whether s has no ASCII control byte (tab included: header values are
// not trimmed by every upstream alike).
func cleanText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
