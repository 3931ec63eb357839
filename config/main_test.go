package config

import (
	"testing"

	"go.uber.org/goleak"
)

// WatchFile runs fsnotify's reader goroutine; every test must leave none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
