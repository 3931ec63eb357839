package upstream

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEntry feeds ParseEntry arbitrary registry values (anyone who can write to the
// registry writes them). It must never panic, and an entry it accepts must hold what the
// rest of the gateway relies on: a canonical "host:port" Key (non-empty host, port 1-65535,
// IP hosts in canonical form, IPv6 in brackets, none of the characters JoinHostPort
// refuses), a scheme of "", "http" or "https", and a weight that is not negative (0 means
// unset; NewSnapshot turns it into 1).
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		`{"address":"10.0.1.5","port":8080,"weight":2,"meta":{"zone":"a"}}`,
		`{"host":"svc.internal","port":443,"scheme":"HTTPS"}`,
		`{"address":"[::1]","port":1}`,
		`{"address":"fe80::1%eth0","port":65535}`,
		`{"address":"a","port":0}`,
		`{"address":"a","port":70000}`,
		`{"address":"a","port":1,"weight":-1}`,
		`{"address":"a b","port":1}`,
		`{"address":"a","port":1} trailing`,
		`{"port":"80"}`,
		"10.0.0.1:80",
		"[2001:db8::1]:8080",
		"host:+80",
		"host:0080",
		" \t10.0.0.1:80\n",
		"http://10.0.1.5:8080",
		"https://svc",
		"https://[::ffff:1.2.3.4]:443/path?q#f",
		"ftp://h:21",
		"http://user@h:80",
		"http://h:99999999999999999999",
		"",
		"{",
		"::",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		ep, err := ParseEntry(value)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: empty error", value)
			}
			return
		}
		host, portStr, err := net.SplitHostPort(ep.Key)
		if err != nil {
			t.Fatalf("%q: key %q is not host:port: %v", value, ep.Key, err)
		}
		if host == "" {
			t.Fatalf("%q: key %q has an empty host", value, ep.Key)
		}
		if port, err := strconv.Atoi(portStr); err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != portStr {
			t.Fatalf("%q: key %q: port %q is not canonical in 1-65535", value, ep.Key, portStr)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.String() != host {
				t.Fatalf("%q: key %q: IP host not canonical (want %s)", value, ep.Key, ip)
			}
		} else if strings.ContainsAny(host, " /?#@[]") {
			t.Fatalf("%q: key %q: host has a character JoinHostPort refuses", value, ep.Key)
		}
		if ep.Scheme != "" && ep.Scheme != "http" && ep.Scheme != "https" {
			t.Fatalf("%q: scheme %q", value, ep.Scheme)
		}
		if ep.Weight < 0 {
			t.Fatalf("%q: weight %d", value, ep.Weight)
		}
		if got := NewSnapshot([]Endpoint{ep}).Endpoints(); len(got) != 1 || got[0].Weight < 1 {
			t.Fatalf("%q: snapshot of %+v is %+v", value, ep, got)
		}
	})
}
