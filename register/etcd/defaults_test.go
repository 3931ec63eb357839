package etcd

import (
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestPrefixMatchesGateway: the prefix a service registers under by default is the one the
// gateway watches by default (repeated here so this package does not link the config parser).
func TestPrefixMatchesGateway(t *testing.T) {
	if defaultPrefix != config.DefaultEtcdPrefix {
		t.Fatalf("register prefix %q, gateway prefix %q", defaultPrefix, config.DefaultEtcdPrefix)
	}
}
