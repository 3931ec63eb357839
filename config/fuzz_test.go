package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that it returns either a config or a
// non-empty Errors, at most maxErrors and a summary line, whose entries all name the file.
func FuzzParse(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	model, err := os.ReadFile("testdata/route_model.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(model)
	for _, s := range []string{
		"",
		okRoute,
		"routes:\n  - {prefix: /a, upstreams: [http://h:1, {url: \"http://h:2\", weight: 2}]}\n",
		"defaults: &d\n  <<: *d\n",
		"a: &a [*a]\nroutes: *a\n",
		"routes:\n  - prefix: /a/../b\n    service: ${X:-y}\n    rate_limit: {rps: 1e400}\n",
		"discovery:\n  consul:\n  etcd:\nroutes:\n  - {prefix: /, service: s, tags: [a]}\n",
		// issue #11: alias and merge-key bombs, a binary file, listener spellings, new keys
		mergeBomb(8),
		"x: &u [" + strings.Repeat("\"http://h:1\",", 600) + "]\ny: &r {prefix: /, upstreams: *u}\nroutes: [" + strings.Repeat("*r,", 600) + "]\n",
		"\x00\x00\x00\x00\x00\x00\x00\x00",
		"listen: \"0x7f.1:08080\"\nadmin: \"[::ffff:127.0.0.1]:8080\"\nadmin_expose: true\n" + okRoute,
		"server: {max_connections: -1, min_body_rate: 256, body_idle_timeout: 1s}\ndefaults: {upgrades: [WebSocket, h2c, \"a b\"], encoded_slashes: rejct}\n" + okRoute,
		// issue #16: data mappings (merge keys, duplicates, nulls), condition forms, targets
		"routes:\n  - prefix: /a\n    host: \"*.x.com\"\n    match: {methods: [get, GET], headers: {X-A: a, x-a: {present: false}, B: {regex: \"(\"}}, query: {q: ~, \"\": {exact: a, regex: b}}}\n    split: [{service: s, weight: 0}, {upstreams: [\"http://h:1\"]}]\n",
		"defaults:\n  headers: {request: {set: &s {X-A: a, <<: *s}, remove: [Host]}}\n  ip_allow: [\"::ffff:10.0.0.0/104\", 10.0.0.1]\n  cors: {allow_origins: [\"*\"], allow_credentials: true}\n  compress: {min_bytes: 0, types: [text/*]}\n" + okRoute,
		// issue #18: auth blocks, files, inheritance, rate limits by identity
		"defaults:\n  rate_limit: {rps: 1, key: identity}\n  auth: {enabled: false, jwt: {jwks_url: \"http://i\", audiences: [a], algorithms: [HS256, none, RS256], from: \"cookie:s\"}}\nroutes:\n  - {prefix: /a, service: s, auth: {}}\n  - {prefix: /b, service: s, auth: {enabled: false}}\n",
		"routes:\n  - prefix: /a\n    service: s\n    auth:\n      api_key: {keys_file: testdata/auth/api-keys.yaml, allow: [billing, x], name_header: X-Api-Key}\n      basic: {users_file: testdata/auth/htpasswd, realm: \"a\\\"b\", cache_ttl: 0}\n      forward: {url: \"http://u:p@f\", response_headers: [X-User, x-user], identity_header: X-Id}\n",
		"x: &h {A: b}\nroutes:\n  - {prefix: /a, service: s, mirror: {upstreams: [\"http://h:1\"], percent: 50}, sticky: {cookie: c}, rewrite: {prefix: /b, host: \"h:1\"}, headers: {response: {add: {<<: [*h, *h]}}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
		if err == nil {
			for i := range c.Routes {
				p := &c.Routes[i].Policy
				if p.Retries == nil || p.AccessLog == nil || p.MaxBodyBytes == nil {
					t.Fatalf("route %d incomplete", i)
				}
			}
			return
		}
		errs, ok := err.(Errors)
		if !ok || len(errs) == 0 || len(errs) > maxErrors+1 {
			t.Fatalf("error %T with %d lines: %v", err, len(errs), err)
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), "f.yaml") {
				t.Fatalf("error without file: %q", e.Error())
			}
		}
	})
}
