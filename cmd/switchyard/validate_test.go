package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `switchyard validate` on hostile or endless input (issue #11, item 16).

// TestValidateInterrupted: SIGINT/SIGTERM (ctx, as main sets it up) stop validate at once,
// exit 130, even while the file is a FIFO nobody writes.
func TestValidateInterrupted(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "routes.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"validate", "-config", fifo}, &bytes.Buffer{}, &stderr) }()
	time.Sleep(100 * time.Millisecond) // let it block on the FIFO (not required for the result)
	cancel()
	select {
	case code := <-exit:
		if code != exitInterrupted || !strings.Contains(stderr.String(), fifo+": interrupted") {
			t.Errorf("exit %d, stderr %q; want %d and interrupted", code, stderr.String(), exitInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("validate ignored the interrupt")
	}
	// Release the abandoned read (a process would just exit), so no goroutine outlives the test.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func TestValidateBoundedOutput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The 10^9-mapping merge bomb of the issue, used in defaults and a route.
	var bomb strings.Builder
	bomb.WriteString("a: &a {x: 1}\n")
	for c := 'b'; c <= 'j'; c++ {
		fmt.Fprintf(&bomb, "%c: &%c {<<: [%s]}\n", c, c, strings.TrimSuffix(strings.Repeat("*"+string(c-1)+",", 10), ","))
	}
	bomb.WriteString("defaults: {<<: *j}\nroutes:\n  - {prefix: /, upstreams: [\"http://h:1\"], <<: *j}\n")
	var many strings.Builder
	many.WriteString("routes:\n")
	for i := range 250 {
		fmt.Fprintf(&many, "  - {prefix: /r%d, upstreams: [\"ftp://h\"]}\n", i)
	}
	for _, tc := range []struct {
		name, path string
		maxLines   int
		want       string
	}{
		{"endless file", "/dev/zero", 1, "/dev/zero: file larger than 1 MiB"},
		{"merge bomb", write("bomb.yaml", bomb.String()), 20, "too many values (anchors and aliases expand to over"},
		{"many errors", write("many.yaml", many.String()), 101, "many.yaml: ... and 150 more errors (only the first 100 are listed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"validate", "-config", tc.path}, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) > tc.maxLines || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("%d lines (at most %d wanted), want %q in:\n%.2000s", len(lines), tc.maxLines, tc.want, stderr.String())
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, tc.path+":") {
					t.Errorf("line without the file name: %q", l)
				}
			}
		})
	}
}
