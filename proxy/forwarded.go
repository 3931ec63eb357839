package proxy

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trust decides whose forwarding headers are believed.
type Trust struct {
	nets []netip.Prefix
}

// NewTrust returns a Trust for the given proxy networks (config.TrustedNets).
func NewTrust(nets []netip.Prefix) *Trust { return &Trust{nets: nets} }

func (t *Trust) trusted(ip netip.Addr) bool {
	if t == nil {
		return false
	}
	ip = ip.Unmap()
	for _, n := range t.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// clientInfo is what the gateway believes about the request's origin.
type clientInfo struct {
	peer     string // the direct peer's IP, as text
	ip       string // the client IP: the peer, or the first untrusted hop of a trusted chain
	trusted  bool   // the direct peer is a trusted proxy
	priorXFF string // the incoming X-Forwarded-For when trusted, else ""
}

// resolveClient works out the client address. Only a trusted peer's X-Forwarded-For is read,
// right to left, and the first address that is not itself a trusted proxy is the client: a
// client cannot spoof its address by sending the header itself.
func (t *Trust) resolveClient(r *http.Request) clientInfo {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	ci := clientInfo{peer: peer, ip: peer}
	if t == nil || len(t.nets) == 0 {
		return ci
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !t.trusted(addr) {
		return ci
	}
	ci.trusted = true
	xff := r.Header["X-Forwarded-For"]
	if len(xff) == 0 {
		return ci
	}
	ci.priorXFF = strings.Join(xff, ", ")
	hops := strings.Split(ci.priorXFF, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(h)
		if err != nil {
			break // garbage: stop believing the chain here
		}
		ci.ip = a.Unmap().String()
		if !t.trusted(a) {
			break
		}
	}
	return ci
}

// setForwarded writes X-Forwarded-For/-Proto/-Host/-Port and X-Real-Ip on the outgoing
// headers: the incoming values are kept only from a trusted peer, otherwise replaced.
// scratch (5 strings) backs the values, saving an allocation per header.
func setForwarded(out http.Header, r *http.Request, ci clientInfo, scratch []string) {
	if ci.priorXFF != "" {
		scratch[0] = ci.priorXFF + ", " + ci.peer
	} else {
		scratch[0] = ci.peer
	}
	out["X-Forwarded-For"] = scratch[0:1:1]
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	host := r.Host
	port := ""
	if ci.trusted {
		if v := r.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
		if v := r.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
		if v := r.Header.Get("X-Forwarded-Port"); isPort(v) {
			port = v
		}
	}
	if port == "" {
		port = hostPort(r.Host, proto)
	}
	scratch[1], scratch[2], scratch[3], scratch[4] = proto, host, port, ci.ip
	out["X-Forwarded-Proto"] = scratch[1:2:2]
	out["X-Forwarded-Host"] = scratch[2:3:3]
	out["X-Forwarded-Port"] = scratch[3:4:4]
	out["X-Real-Ip"] = scratch[4:5:5]
	delete(out, "Forwarded") // RFC 7239 form is not maintained; never pass a client's own
}

// hostPort is the port the client addressed: the Host header's, else the scheme's default
// (what the client sees, also behind a port mapping in front of the listener).
func hostPort(host, proto string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") && isPort(host[i+1:]) {
		return host[i+1:]
	}
	if proto == "https" {
		return "443"
	}
	return "80"
}

// isPort reports whether s is a decimal port number 1..65535 without sign or padding.
func isPort(s string) bool {
	if len(s) == 0 || len(s) > 5 || s[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

const hexDigits = "0123456789abcdef"

// requestID returns the incoming X-Request-Id when it is sane (printable, <= 128 bytes),
// else a new random 128-bit hex ID.
func requestID(h http.Header) string {
	if v := h["X-Request-Id"]; len(v) == 1 && len(v[0]) > 0 && len(v[0]) <= 128 && printable(v[0]) {
		return v[0]
	}
	var b [32]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexDigits[(hi>>(60-4*i))&0xf]
		b[16+i] = hexDigits[(lo>>(60-4*i))&0xf]
	}
	return string(b[:])
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
