package proxy

import (
	"testing"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/proxy/h1"
)

// TestClientDefaultsMatchConfig: h1 repeats three transport defaults so it need not link the
// config parser; they must stay the values config writes.
func TestClientDefaultsMatchConfig(t *testing.T) {
	for _, tc := range []struct {
		name       string
		h1, config any
	}{
		{"dial timeout", h1.DefaultDialTimeout, config.DefaultDialTimeout},
		{"idle conn timeout", h1.DefaultIdleConnTimeout, config.DefaultIdleConnTimeout},
		{"max idle conns per host", h1.DefaultMaxIdleConnsPerHost, config.DefaultMaxIdleConnsPerHost},
	} {
		if tc.h1 != tc.config {
			t.Errorf("%s: h1 %v, config %v", tc.name, tc.h1, tc.config)
		}
	}
}
