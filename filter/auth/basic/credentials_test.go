package basic

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		value          string
		user, password string
		want           parseResult
	}{
		{"Basic " + enc("alice:pw"), "alice", "pw", parsedOK},
		{"basic " + enc("alice:pw"), "alice", "pw", parsedOK},
		{"BASIC  " + enc("alice:pw"), "alice", "pw", parsedOK},
		{"Basic " + enc(":"), "", "", parsedOK},
		{"Basic " + enc("a:b:c"), "a", "b:c", parsedOK},
		{"Basic " + enc("zoë:päss"), "zoë", "päss", parsedOK},
		{"Bearer x", "", "", notBasic},
		{"", "", "", notBasic},
		{"Basic\t" + enc("a:b"), "", "", notBasic},
		{"Basic", "", "", malformed},
		{"Basic ", "", "", malformed},
		{"Basic " + enc("nocolon"), "", "", malformed},
		{"Basic " + strings.TrimRight(enc("a:bc"), "="), "", "", malformed},
		{"Basic " + enc("a:b") + " trailing", "", "", malformed},
		{"Basic " + enc("a\tb:c"), "", "", malformed},
		{"Basic " + enc("a:b\x7f"), "", "", malformed},
		{"Basic " + strings.Repeat("A", maxToken+4), "", "", malformed},
		// YTp= is YTo= ("a:") with non-zero padding bits: a second spelling that lenient
		// decoding accepts and strict decoding refuses.
		{"Basic YTo=", "a", "", parsedOK},
		{"Basic YTp=", "", "", malformed},
		{"Basic YTpiAQ==", "", "", malformed}, // "a:b\x01"
	}
	for _, tt := range tests {
		var buf credentialBuffer
		user, password, got := parseAuthorization(tt.value, &buf)
		if got != tt.want || string(user) != tt.user || string(password) != tt.password {
			t.Errorf("parseAuthorization(%q) = %q, %q, %v; want %q, %q, %v", tt.value, user, password, got, tt.user, tt.password, tt.want)
		}
	}
}

// FuzzParseAuthorization: any header value parses without panicking, a parsed user has no
// colon, neither part has a control character, and encoding the parts again gives back
// the same credentials.
func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{"Basic YWxpY2U6cHc=", "basic  YTpiOmM=", "Basic", "Bearer x", "Basic YTpiAQ==", "Basic !!!!"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var buf credentialBuffer
		user, password, res := parseAuthorization(value, &buf)
		if res != parsedOK {
			return
		}
		if bytes.IndexByte(user, ':') >= 0 {
			t.Fatalf("user %q holds a colon", user)
		}
		for _, c := range append(append([]byte{}, user...), password...) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control character %#x in %q:%q", c, user, password)
			}
		}
		again := "Basic " + base64.StdEncoding.EncodeToString([]byte(string(user)+":"+string(password)))
		var buf2 credentialBuffer
		u2, p2, res2 := parseAuthorization(again, &buf2)
		if res2 != parsedOK || !bytes.Equal(u2, user) || !bytes.Equal(p2, password) {
			t.Fatalf("%q parsed to %q:%q, re-encoded %q parsed to %q:%q (%v)", value, user, password, again, u2, p2, res2)
		}
	})
}
