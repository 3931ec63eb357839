package register

import (
	"encoding/json"
	"fmt"
)

// Entry is the wire format of one instance in the key-value registries: the JSON value of
// an etcd key <prefix><service>/<id> or of a ZooKeeper node <root>/<service>/<id>. The
// registrars write it (EncodeEntry) and the gateway reads it (upstream.ParseEntry), so both
// sides share this one definition:
//
//	{"address":"10.0.1.5","port":8080,"weight":2,"scheme":"https","meta":{"zone":"a"}}
//
// address is a host name or IP (IPv6 with or without brackets) and port 1-65535. weight is
// the instance's share under the weighted policy; 0 or absent means 1. scheme is http (the
// default, omitted when written) or https. meta is free-form. Readers accept "host" in place
// of "address" (AddressOrHost), for entries written by other tools; EncodeEntry never
// writes it.
type Entry struct {
	Address string            `json:"address"`
	Host    string            `json:"host,omitempty"` // read only: an alias of address
	Port    int               `json:"port"`
	Weight  int               `json:"weight"`
	Scheme  string            `json:"scheme,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// AddressOrHost is the entry's host: address, or else the host alias.
func (e Entry) AddressOrHost() string {
	if e.Address != "" {
		return e.Address
	}
	return e.Host
}

// EncodeEntry checks inst's address and scheme and returns the JSON Entry registrars store
// for it. Weight is written as given; Open has already made it at least 1.
func EncodeEntry(inst Instance) ([]byte, error) {
	host, port, err := SplitAddress(inst.Address)
	if err != nil {
		return nil, err
	}
	e := Entry{Address: host, Port: port, Weight: inst.Weight, Meta: inst.Meta}
	switch inst.Scheme {
	case "", "http": // the reader's default: not written
	case "https":
		e.Scheme = "https"
	default:
		return nil, fmt.Errorf("instance scheme %q is not http or https", inst.Scheme)
	}
	return json.Marshal(e)
}
