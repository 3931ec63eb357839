package grpcresolver

import (
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// FuzzParseTarget: any target string either fails with an error or gives a target whose
// service is one non-empty path segment; a consul target's tags are never empty; no other
// scheme ever gets a query field.
func FuzzParseTarget(f *testing.F) {
	for _, seed := range []string{
		"consul:///users?tag=v2&dc=dc1", "consul:///users?tag=a&tag=b&warning=true",
		"etcd:///users", "zookeeper:///a", "etcd://host/users", "consul:///users?tag=%zz",
		"etcd:///a/b", "consul:///%2F", "etcd:///users?", "consul:///u?dc=&tag=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		for _, scheme := range []string{config.RegistryConsul, config.RegistryEtcd} {
			got, err := ParseTarget(scheme, *u)
			if err != nil {
				continue
			}
			if got.Service == "" || strings.ContainsAny(got.Service, "/ \t\r\n\x00") {
				t.Fatalf("%s %q: service %q", scheme, target, got.Service)
			}
			for _, tag := range got.Tags {
				if tag == "" {
					t.Fatalf("%q: an empty tag", target)
				}
			}
			if scheme != config.RegistryConsul && (len(got.Tags) > 0 || got.Datacenter != "" || got.IncludeWarning) {
				t.Fatalf("%s %q: query fields %+v", scheme, target, got)
			}
		}
	})
}
