package basic

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unsafe"
)

// maxToken bounds the base64 token, so the decoded user:password stays under about 1 KiB:
// bcrypt reads 72 bytes of a password, anything longer is noise, and the bound keeps the
// scratch buffer fixed.
const maxToken = 1368

// credentialBuffer holds a decoded token of up to maxToken characters.
type credentialBuffer [maxToken / 4 * 3]byte

// parseResult is what parseAuthorization made of a header value.
type parseResult int

const (
	parsedOK  parseResult = iota
	notBasic              // another scheme: not this mechanism's credential
	malformed             // Basic, but not base64(user:password) within the rules
)

// strictBase64 refuses non-zero padding bits and missing padding, so each credential has
// exactly one accepted spelling.
var strictBase64 = base64.StdEncoding.Strict()

// parseAuthorization reads `Basic base64(user:password)` (RFC 7617) into buf and returns
// the user and password as slices of it. The scheme is case-insensitive; one or more spaces
// may follow it. The decoded bytes must hold a colon and no control character (RFC 7617
// forbids them in both parts, and the cache key relies on it).
func parseAuthorization(value string, buf *credentialBuffer) (user, password []byte, res parseResult) {
	scheme, token, _ := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return nil, nil, notBasic
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || len(token) > maxToken {
		return nil, nil, malformed
	}
	// Decode reads the token's bytes in place: copying them would allocate per request.
	n, err := strictBase64.Decode(buf[:], unsafe.Slice(unsafe.StringData(token), len(token)))
	if err != nil {
		return nil, nil, malformed
	}
	credentials := buf[:n]
	for _, c := range credentials {
		if c < 0x20 || c == 0x7f {
			return nil, nil, malformed
		}
	}
	colon := bytes.IndexByte(credentials, ':')
	if colon < 0 {
		return nil, nil, malformed
	}
	return credentials[:colon], credentials[colon+1:], parsedOK
}
