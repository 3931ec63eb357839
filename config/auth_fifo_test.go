//go:build unix

package config

import (
	"path/filepath"
	"syscall"
	"testing"
)

// A users file that is a FIFO is refused rather than waited on: opening it would block
// until something writes to it, and the reload with it.
func TestAuthFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "htpasswd")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	checkErrors(t, []errorCase{
		{"fifo", "routes:\n  - prefix: /a\n" + okUps + "    auth: {basic: {users_file: " + fifo + "}}\n", []string{
			`routes.yaml:4: routes[0].auth.basic.users_file: ` + fifo + `: not a regular file (` + fifo + `)`}},
	})
}
