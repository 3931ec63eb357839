package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logLine is one line of a gateway started with -log-format json: the decoded object (numbers
// kept as json.Number, so an integer can be told from a float) and the raw text.
type logLine struct {
	fields map[string]any
	raw    string
}

// str returns the string field key, or "" when it is missing or not a string.
func (l logLine) str(key string) string {
	s, _ := l.fields[key].(string)
	return s
}

// jsonLog parses every complete line the gateway has written so far (its own slog lines and
// the embedded etcd's zap lines share the stream). A line that is not one JSON object fails
// the test: with -log-format json nothing else may reach the stream. The last line is left
// for a later call when its newline has not been written yet.
func (g *gateway) jsonLog(t testing.TB) []logLine {
	t.Helper()
	data, err := os.ReadFile(g.log)
	if err != nil {
		t.Fatal(err)
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []logLine
	for i, raw := range strings.Split(string(data), "\n") {
		if raw == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil || dec.More() || fields == nil {
			t.Fatalf("log line %d is not a JSON object (%v): %s", i+1, err, raw)
		}
		out = append(out, logLine{fields: fields, raw: raw})
	}
	return out
}

// gatewayLines keeps the gateway's own slog lines (with "time", "level" and "msg"), leaving
// out the embedded etcd's.
func gatewayLines(lines []logLine) []logLine {
	return slices.DeleteFunc(slices.Clone(lines), func(l logLine) bool {
		_, hasTime := l.fields["time"]
		return !hasTime || l.str("msg") == ""
	})
}

// waitUntil polls cond every 10 ms until it returns nil or timeout passes; it returns cond's
// last error.
func waitUntil(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// configPath is the routes.yaml the gateway was started with.
func (g *gateway) configPath() string {
	if i := slices.Index(g.cmd.Args, "-config"); i >= 0 && i+1 < len(g.cmd.Args) {
		return g.cmd.Args[i+1]
	}
	panic("gateway started without -config")
}

// catchesSIGHUP reports whether the process has a handler for SIGHUP, from the SigCgt mask
// of /proc/PID/status. Go's runtime leaves an inherited "ignore" in place for SIGHUP until
// signal.Notify asks for it, so for a gateway started under nohup this turns true exactly
// when the reloader starts listening.
func (g *gateway) catchesSIGHUP() (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			return err == nil && m&(1<<(syscall.SIGHUP-1)) != 0, err
		}
	}
	return false, fmt.Errorf("no SigCgt in /proc/%d/status", g.cmd.Process.Pid)
}
