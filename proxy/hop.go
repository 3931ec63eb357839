package proxy

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxConnectionTokens bounds the options one message's Connection header may name. Real
// clients send one or two ("keep-alive", "Upgrade"); a bound keeps header filtering linear
// in the header block even when a peer sends tens of thousands of tokens (issue #11).
const maxConnectionTokens = 64

// isHopHeader reports whether k (canonical) is a hop-by-hop field of RFC 9110 7.6.1, a
// legacy one every proxy strips, or HTTP2-Settings (RFC 7540 3.2: it only means something
// with an h2c upgrade, which is never forwarded). None of them is ever forwarded.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
		return true
	}
	return false
}

// connectionOptions is the parsed Connection header of one message: the canonical field
// names it nominates, which are hop-by-hop for this message too.
type connectionOptions struct {
	names [maxConnectionTokens]string
	n     int
}

// parseConnection reads every Connection value once. It returns false when the values
// name more than maxConnectionTokens options, which the caller refuses (400 or 502).
// Tokens naming fields that are dropped anyway (keep-alive, upgrade) and "close" (which
// names no field) cost no entry and no allocation.
func parseConnection(values []string, co *connectionOptions) bool {
	co.n = 0
	for _, v := range values {
		for v != "" {
			var tok string
			if i := strings.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, ""
			}
			tok = strings.Trim(tok, " \t")
			switch {
			case tok == "":
				continue
			case strings.EqualFold(tok, "keep-alive"), strings.EqualFold(tok, "upgrade"), strings.EqualFold(tok, "close"):
				continue
			}
			if co.n == maxConnectionTokens {
				return false
			}
			co.names[co.n] = http.CanonicalHeaderKey(tok)
			co.n++
		}
	}
	return true
}

// has reports whether k (canonical) is named; a linear scan of at most
// maxConnectionTokens short strings.
func (co *connectionOptions) has(k string) bool {
	for _, n := range co.names[:co.n] {
		if n == k {
			return true
		}
	}
	return false
}

// aliasesControlledField reports whether a field name with an underscore reads, once
// underscores become dashes, as a field the gateway controls (forwarding, framing, routing,
// hop-by-hop). CGI-style servers (and many frameworks) map X_Forwarded_For and
// X-Forwarded-For to the same variable, so such a name could smuggle a forged value past the
// gateway's own X-Forwarded-For. nginx drops every underscore name by default; only the
// aliasing ones are dropped here, so other underscore fields keep working.
func aliasesControlledField(k string) bool {
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	d := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	return isHopHeader(d) || isForwardingHeader(d) || d == "Content-Length" || d == "Host" || d == "X-Request-Id"
}

// isForwardingHeader reports whether k is one of the fields through which a proxy tells
// the upstream who the client is; the gateway always sets or replaces them.
func isForwardingHeader(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip", "Forwarded":
		return true
	}
	return false
}

// copyRequestHeaders copies src into a new map without hop-by-hop fields, fields named in
// Connection, and underscore aliases of controlled fields. Value slices are shared, not
// copied: neither side modifies them in place. It returns false when the Connection header
// names too many options (the request is refused with 400). Cost is linear in the header
// block.
func copyRequestHeaders(src http.Header) (http.Header, bool) {
	var co connectionOptions
	if c := src["Connection"]; len(c) > 0 && !parseConnection(c, &co) {
		return nil, false
	}
	dst := make(http.Header, len(src)+6)
	for k, vv := range src {
		if isHopHeader(k) || (co.n > 0 && co.has(k)) || aliasesControlledField(k) {
			continue
		}
		// X-Forwarded-* and X-Real-Ip are overwritten by setForwarded from trusted values.
		dst[k] = vv
	}
	return dst, true
}

// filterResponseHeader reports whether a response field k must not reach the client:
// hop-by-hop, named in the response's Connection, or Alt-Svc (it advertises the upstream's
// own endpoints, which clients must not bypass the gateway to reach).
func filterResponseHeader(k string, co *connectionOptions) bool {
	return isHopHeader(k) || (co.n > 0 && co.has(k)) || k == "Alt-Svc"
}

// copyResponseHeaders adds src's end-to-end fields to dst. It returns false, copying
// nothing, when src's Connection names too many options (the upstream answer is refused).
func copyResponseHeaders(dst, src http.Header) bool {
	var co connectionOptions
	if c := src["Connection"]; len(c) > 0 && !parseConnection(c, &co) {
		return false
	}
	for k, vv := range src {
		if filterResponseHeader(k, &co) {
			continue
		}
		if old, ok := dst[k]; ok && len(old) > 0 {
			dst[k] = append(old, vv...)
			continue
		}
		dst[k] = vv
	}
	return true
}

// forbiddenTrailer reports whether a field may not travel as a trailer (RFC 9110 6.5.1):
// framing, routing, authentication, request modifiers, content processing, and every
// field the gateway itself controls. net/http's server and client drop some of these; the
// list is enforced here for both directions so no client or upstream can use a trailer to
// send what it could not send as a header.
func forbiddenTrailer(k string) bool {
	if isHopHeader(k) || isForwardingHeader(k) || aliasesControlledField(k) {
		return true
	}
	switch k {
	case "Content-Length", "Host", "Authorization", "Cookie", "Set-Cookie", "Www-Authenticate",
		"Content-Type", "Content-Encoding", "Content-Range", "Cache-Control", "Expect",
		"Max-Forwards", "Pragma", "Range", "Age", "Expires", "Date", "Location", "Retry-After",
		"Vary", "Warning", "X-Request-Id", "Alt-Svc":
		return true
	}
	return strings.HasPrefix(k, "If-")
}

// upgradeToken returns the single protocol a request asks to switch to ("websocket"), or ""
// when it asks for none or for a list (a proxy forwards one protocol it has allowed, or none).
func upgradeToken(h http.Header) string {
	up := h["Upgrade"]
	if len(up) != 1 || !httpguts.HeaderValuesContainsToken(h["Connection"], "upgrade") {
		return ""
	}
	v := strings.Trim(up[0], " \t")
	if v == "" || strings.ContainsAny(v, ", \t") {
		return ""
	}
	return v
}
