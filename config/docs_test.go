package config

import (
	"os"
	"regexp"
	"testing"
)

// TestDocsExamples keeps the README's configuration reference honest: its full example must load, and the
// inheritance snippet must mean what the text says.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	var full, inherit []byte
	for _, b := range blocks {
		switch {
		case regexp.MustCompile(`(?m)^listen:`).Match(b[1]):
			full = b[1]
		case regexp.MustCompile(`(?m)^  rate_limit: \{ enabled: false`).Match(b[1]):
			inherit = b[1]
		}
	}
	if full == nil || inherit == nil {
		t.Fatalf("examples not found in docs (%d yaml blocks)", len(blocks))
	}
	t.Setenv("ETCD_PASSWORD", "x")
	c, err := Parse("README.md", full)
	if err != nil {
		t.Fatalf("annotated example: %v", err)
	}
	if rl := c.Routes[0].RateLimit; rl == nil || rl.RPS != 100 || rl.Key != RateLimitKeyClientIP {
		t.Errorf("annotated example users rate_limit = %+v", rl)
	}
	c, err = Parse("README.md", inherit)
	if err != nil {
		t.Fatalf("inheritance example: %v", err)
	}
	login, search := c.Routes[0].RateLimit, c.Routes[1].RateLimit
	if login == nil || login.RPS != 50 || login.Key != RateLimitKeyClientIP || search == nil || search.RPS != 500 || search.Key != RateLimitKeyClientIP {
		t.Errorf("inheritance example: login %+v search %+v", login, search)
	}
}
