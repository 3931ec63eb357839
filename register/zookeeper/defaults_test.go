package zookeeper

import (
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestRootMatchesGateway: the root a service registers under by default is the one the
// gateway watches by default (repeated here so this package does not link the config parser).
func TestRootMatchesGateway(t *testing.T) {
	if defaultRoot != config.DefaultZooKeeperRoot {
		t.Fatalf("register root %q, gateway root %q", defaultRoot, config.DefaultZooKeeperRoot)
	}
}
