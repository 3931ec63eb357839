package proxy

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// FuzzCopyHeaders parses arbitrary bytes as a header block (as net/http's server would) and
// checks the hop-by-hop invariants of both copy directions: nothing hop-by-hop, nothing the
// Connection header names, no underscore alias of a controlled field, and nothing invented.
func FuzzCopyHeaders(f *testing.F) {
	for _, s := range []string{
		"Connection: keep-alive\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n",
		"Connection: X-Secret, close\r\nX-Secret: 1\r\nX-Other: 2\r\n\r\n",
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
		"X_Forwarded_For: 6.6.6.6\r\nX-Real_IP: 1\r\nMy_Header: ok\r\n\r\n",
		"Connection: " + strings.Repeat("a,", 70) + "\r\nA: 1\r\n\r\n",
		"Connection: ,,, ,\t,x-a\r\nX-A: 1\r\nAlt-Svc: h3\r\n\r\n",
		"Connection: te\r\nTe: trailers\r\nTrailer: X\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mh, err := textproto.NewReader(bufio.NewReader(strings.NewReader(string(data)))).ReadMIMEHeader()
		if err != nil && len(mh) == 0 {
			return
		}
		src := http.Header(mh)
		var co connectionOptions
		fits := parseConnection(src["Connection"], &co)

		out, ok := copyRequestHeaders(src)
		if ok != fits {
			t.Fatalf("copyRequestHeaders ok=%v, parseConnection %v", ok, fits)
		}
		resp := http.Header{}
		if copyResponseHeaders(resp, src) != fits {
			t.Fatal("request and response sides disagree on the Connection cap")
		}
		if !ok {
			if len(resp) != 0 {
				t.Fatal("refused response still copied fields")
			}
			return
		}
		for name, copied := range map[string]http.Header{"request": out, "response": resp} {
			for k := range copied {
				if _, orig := src[k]; !orig {
					t.Fatalf("%s: %q invented", name, k)
				}
				if isHopHeader(k) || co.has(k) || (name == "request" && aliasesControlledField(k)) {
					t.Fatalf("%s: %q forwarded", name, k)
				}
			}
		}
		if _, ok := resp["Alt-Svc"]; ok {
			t.Fatal("Alt-Svc relayed")
		}
	})
}
