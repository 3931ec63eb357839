package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/register"
)

// entryJSON is register.Entry, the JSON form services write into key-value registries (etcd,
// ZooKeeper), under a name of its own only because encoding/json names the Go type in its
// errors ("Go struct field entryJSON.port ..."), which ParseEntry's callers log and count:
// they read as they always have. The fields and tags are register.Entry's.
type entryJSON register.Entry

// ParseEntry turns a registry value into an Endpoint. It accepts the JSON form
// {"address":"10.0.1.5","port":8080,"weight":2,"meta":{...}} ("host" for "address", optional
// "scheme"; meta's register.MetaProtocol key sets Protocol), a plain "host:port", or a URL such
// as "http://10.0.1.5:8080" ("h2c://" is plain http with Protocol h2c). Anything else is an
// error naming what is wrong, so the caller can skip the entry and count it.
func ParseEntry(value []byte) (Endpoint, error) {
	v := bytes.TrimSpace(value)
	if len(v) == 0 {
		return Endpoint{}, fmt.Errorf("empty value")
	}
	if v[0] == '{' {
		var j entryJSON
		dec := json.NewDecoder(bytes.NewReader(v))
		if err := dec.Decode(&j); err != nil {
			return Endpoint{}, fmt.Errorf("invalid JSON: %w", err)
		}
		addr := register.Entry(j).AddressOrHost()
		if addr == "" {
			return Endpoint{}, fmt.Errorf(`JSON has no "address" (or "host")`)
		}
		if j.Weight < 0 {
			return Endpoint{}, fmt.Errorf("weight %d is negative", j.Weight)
		}
		scheme := strings.ToLower(j.Scheme)
		if scheme != "" && scheme != "http" && scheme != "https" {
			return Endpoint{}, fmt.Errorf("scheme %q is not http or https", j.Scheme)
		}
		key, err := JoinHostPort(strings.Trim(addr, "[]"), j.Port)
		if err != nil {
			return Endpoint{}, err
		}
		e := Endpoint{Key: key, Scheme: scheme, Weight: j.Weight, Meta: j.Meta}
		if err := EndpointProtocol(&e); err != nil {
			return Endpoint{}, err
		}
		return e, nil
	}
	s := string(v)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Endpoint{}, fmt.Errorf("invalid URL: %w", err)
		}
		proto := ProtocolAuto
		switch u.Scheme {
		case "http", "https":
		case "h2c": // HTTP/2 over cleartext, as plain gRPC servers speak
			u.Scheme, proto = "http", ProtocolH2C
		default:
			return Endpoint{}, fmt.Errorf("URL scheme %q is not http, https or h2c", truncate(u.Scheme, 16))
		}
		port := 80
		if u.Scheme == "https" {
			port = 443
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return Endpoint{}, fmt.Errorf("invalid port %q", p)
			}
			port = n
		}
		key, err := JoinHostPort(u.Hostname(), port)
		if err != nil {
			return Endpoint{}, err
		}
		return Endpoint{Key: key, Scheme: u.Scheme, Protocol: proto}, nil
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("not JSON, a URL or host:port: %q", truncate(s, 64))
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return Endpoint{}, fmt.Errorf("invalid port %q", portStr)
	}
	key, err := JoinHostPort(host, port)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Key: key}, nil
}

// JoinHostPort validates host and port and returns the canonical endpoint key, with IPv6
// addresses in brackets and in their canonical text form.
func JoinHostPort(host string, port int) (string, error) {
	if host == "" {
		return "", fmt.Errorf("empty host")
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("port %d out of range 1-65535", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		// netip accepts any zone text ("::%]"); one that could end the brackets or be read
		// as another part of an address would make a key that is not host:port.
		if z := ip.Zone(); strings.ContainsAny(z, " /?#@[]%") {
			return "", fmt.Errorf("invalid IPv6 zone %q", truncate(z, 64))
		}
		host = ip.String()
	} else if strings.ContainsAny(host, " /?#@[]") {
		return "", fmt.Errorf("invalid host %q", truncate(host, 64))
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
