package upstream

import (
	"fmt"

	"github.com/switchyard/switchyard/register"
)

// Protocol is the HTTP version the gateway speaks to an endpoint. Whether the connection
// uses TLS follows the endpoint's Scheme: the gateway never drops TLS an endpoint announced
// nor adds TLS it did not.
type Protocol uint8

// Protocols, as upstream_protocol and the registry metadata key register.MetaProtocol name
// them.
const (
	// ProtocolAuto: the endpoint's declared protocol; else HTTP/2 or HTTP/1.1 as TLS ALPN
	// agrees for https endpoints, HTTP/1.1 for plain ones.
	ProtocolAuto Protocol = iota
	// ProtocolHTTP1 is HTTP/1.1.
	ProtocolHTTP1
	// ProtocolH2C is HTTP/2 with prior knowledge over cleartext (an https endpoint gets
	// HTTP/2 over TLS).
	ProtocolH2C
	// ProtocolH2 is HTTP/2 over TLS, ALPN "h2" only (a plain endpoint gets h2c).
	ProtocolH2
)

var protocolNames = [...]string{"auto", "http1", "h2c", "h2"}

// String is the protocol's name in config, metadata and logs.
func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "unknown"
}

// ParseProtocol reads a protocol name (auto, http1, h2c or h2; exact, lower case).
func ParseProtocol(s string) (Protocol, error) {
	for i, n := range protocolNames {
		if s == n {
			return Protocol(i), nil
		}
	}
	return ProtocolAuto, fmt.Errorf("protocol %q is not auto, http1, h2c or h2", truncate(s, 32))
}

// IsHTTP2 reports whether p always speaks HTTP/2 (h2c or h2).
func (p Protocol) IsHTTP2() bool { return p == ProtocolH2C || p == ProtocolH2 }

// Resolve returns the protocol for endpoint e on a route whose upstream_protocol is route:
// an explicit route setting wins (the operator's override); under auto, the endpoint's own
// declaration; else ProtocolAuto (HTTP/2 only if ALPN agrees, for https endpoints) or
// ProtocolHTTP1 for plain ones. The result is never auto for a plain endpoint.
func (e *Endpoint) Resolve(route Protocol) Protocol {
	p := route
	if p == ProtocolAuto {
		p = e.Protocol
	}
	if p == ProtocolAuto && e.Scheme != "https" {
		p = ProtocolHTTP1
	}
	return p
}

// metaProtocol reads the protocol an endpoint declares in its registry metadata (key
// register.MetaProtocol); an absent key is auto.
func metaProtocol(meta map[string]string) (Protocol, error) {
	v, ok := meta[register.MetaProtocol]
	if !ok {
		return ProtocolAuto, nil
	}
	p, err := ParseProtocol(v)
	if err != nil {
		return ProtocolAuto, fmt.Errorf("meta %s: %w", register.MetaProtocol, err)
	}
	return p, nil
}

// EndpointProtocol checks the protocol e's metadata declares and records it in e.Protocol,
// unless e already declares one (an h2c:// URL). Registry readers call it on every entry so
// a bad value is refused with the entry, with a clear error, instead of being ignored.
func EndpointProtocol(e *Endpoint) error {
	p, err := metaProtocol(e.Meta)
	if err != nil {
		return err
	}
	if e.Protocol == ProtocolAuto {
		e.Protocol = p
	}
	return nil
}
