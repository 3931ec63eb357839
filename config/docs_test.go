package config

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// readmeYAML returns the README's yaml blocks with the line each starts on.
func readmeYAML(t *testing.T) (blocks [][]byte, lines []int) {
	t.Helper()
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatchIndex(doc, -1) {
		blocks = append(blocks, doc[m[2]:m[3]])
		lines = append(lines, bytes.Count(doc[:m[2]], []byte("\n"))+1)
	}
	return blocks, lines
}

// TestDocsExamples keeps the README's configuration reference honest: its full example must load, and the
// inheritance snippet must mean what the text says.
func TestDocsExamples(t *testing.T) {
	blocks, _ := readmeYAML(t)
	var full, inherit []byte
	for _, b := range blocks {
		switch {
		case regexp.MustCompile(`(?m)^listen:`).Match(b):
			full = b
		case regexp.MustCompile(`(?m)^  rate_limit: \{ enabled: false`).Match(b):
			inherit = b
		}
	}
	if full == nil || inherit == nil {
		t.Fatalf("examples not found in docs (%d yaml blocks)", len(blocks))
	}
	t.Setenv("ETCD_PASSWORD", "x")
	t.Setenv("STICKY_SECRET", "x")
	c, err := Parse("README.md", full)
	if err != nil {
		t.Fatalf("annotated example: %v", err)
	}
	if rl := c.Routes[0].RateLimit; rl == nil || rl.RPS != 100 || rl.Key != RateLimitKeyClientIP {
		t.Errorf("annotated example users rate_limit = %+v", rl)
	}
	canary := c.Routes[1]
	if canary.Prefix != c.Routes[0].Prefix || canary.Host != c.Routes[0].Host || canary.Match == nil || len(canary.Split) != 2 ||
		canary.Split[0].Weight != 10 || canary.Sticky == nil || canary.Rewrite == nil || canary.Rewrite.Prefix != "/" {
		t.Errorf("annotated example canary route = %+v", canary)
	}
	for _, r := range c.Routes {
		if r.Compress == nil || r.Compress.MinBytes != 1024 || r.Headers == nil || r.Headers.Response.Remove[0] != "Server" {
			t.Errorf("annotated example %s: compress %+v headers %+v, want the defaults'", r.Prefix, r.Compress, r.Headers)
		}
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

// TestDocsFragments loads every yaml block of the README: whole documents as they are, a
// top-level section with a route added, and a route's keys inside a route.
func TestDocsFragments(t *testing.T) {
	t.Setenv("ETCD_PASSWORD", "x")
	t.Setenv("STICKY_SECRET", "x")
	topKeys, _ := fieldsOf(typeOf[Config]())
	routeKeys, _ := fieldsOf(typeOf[Route]())
	firstKey := regexp.MustCompile(`(?m)^([a-z_]+):`)
	const filler = "    upstreams: [\"http://127.0.0.1:1\"]\n"
	blocks, lines := readmeYAML(t)
	// The auth examples name their keys and users files by relative paths, as routes.yaml
	// would: give them the test's files.
	dir := t.TempDir()
	for name, from := range map[string]string{"api-keys.yaml": testKeys, "htpasswd": testUsers} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, string(data))
	}
	t.Chdir(dir)
	for i, b := range blocks {
		m := firstKey.FindSubmatch(b)
		if m == nil {
			t.Errorf("README.md:%d: a yaml block that starts with no key", lines[i])
			continue
		}
		key, doc := string(m[1]), string(b)
		if key == "keys" { // a keys file (api_key.keys_file)
			if _, errs := parseKeysFile(b); len(errs) > 0 {
				t.Errorf("README.md:%d: keys file example does not load: %v", lines[i], errs)
			}
			continue
		}
		switch _, top := topKeys[key]; {
		case top && strings.Contains(doc, "\nroutes:") || strings.HasPrefix(doc, "routes:"):
		case top:
			doc += "routes:\n  - prefix: /docs\n" + filler
		case routeKeys[key] != nil:
			doc = "routes:\n  - prefix: /docs\n" + regexp.MustCompile(`(?m)^`).ReplaceAllString(strings.TrimSuffix(doc, "\n"), "    ") + "\n"
			if !regexp.MustCompile(`(?m)^    (service|upstreams|split):`).MatchString(doc) {
				doc += filler
			}
		default:
			t.Errorf("README.md:%d: yaml block starting with %q is neither a routes.yaml nor a section or route key", lines[i], key)
			continue
		}
		if _, err := Parse("README.md", []byte(doc)); err != nil {
			t.Errorf("README.md:%d: example does not load:\n%v\n%s", lines[i], err, doc)
		}
	}
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// TestDocsNameEveryKey checks that the README's configuration reference names every key of
// the schema, in code (`key`, `{ key: ...}`) or as a section (discovery.embedded), so a key
// added to the types without documentation fails here.
func TestDocsNameEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(ty reflect.Type, path string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == durationType || seen[ty] {
			return
		}
		seen[ty] = true
		fields, names := fieldsOf(ty)
		for _, name := range names {
			if !regexp.MustCompile("[`{.…]\\s*" + regexp.QuoteMeta(name) + "\\b").Match(doc) {
				t.Errorf("README.md does not name %s", join(path, name))
			}
			walk(ty.FieldByIndex(fields[name]).Type, join(path, name))
		}
	}
	walk(typeOf[Config](), "")
	if len(seen) < 20 {
		t.Fatalf("walked only %d types", len(seen))
	}
}
