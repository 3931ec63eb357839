//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// readLimited opens before it checks, so the open itself must not wait on a FIFO: one put
// in the file's place after any check would otherwise hold the reload until a writer
// came. A plain os.Open here blocks, and the test fails after 10 s.
func TestReadLimitedDoesNotWaitOnFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "keys.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := readLimited(fifo, 1<<20)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("readLimited(FIFO) = %v, want not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		// Be the writer the open waits for, so the goroutine ends with the test.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("readLimited waited on a FIFO with no writer")
	}
}

// A users file reached through a symbolic link (as Kubernetes mounts ConfigMaps and
// Secrets) is read through it, and listed under the name the config gives it.
func TestAuthFileSymlink(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(testUsers)
	if err != nil {
		t.Fatal(err)
	}
	target := writeFile(t, dir, "htpasswd.v1", string(data))
	link := filepath.Join(dir, "htpasswd")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "routes:\n  - prefix: /a\n"+okUps+"    auth: {basic: {users_file: "+link+"}}\n")
	if len(c.Routes[0].Auth.Basic.Users) != 2 || len(c.AuthFiles) != 1 || c.AuthFiles[0].Path != link {
		t.Fatalf("users %v files %+v", c.Routes[0].Auth.Basic.Users, c.AuthFiles)
	}
}
