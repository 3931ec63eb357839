package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testKeys  = "testdata/auth/api-keys.yaml"
	testUsers = "testdata/auth/htpasswd"
)

// Every error of the auth block, with its exact file:line: path: message.
func TestAuthErrors(t *testing.T) {
	const ups = "upstreams: [\"http://h:1\"]"
	route := func(extra string) string {
		return "routes:\n  - prefix: /a\n    " + ups + "\n" + extra
	}
	checkErrors(t, []errorCase{
		// decoding
		{"unknown keys", route("    auth:\n      api_keys: {}\n      jwt: {jwks_url: \"http://i\", audiences: [a], algorithm: [RS256]}\n"), []string{
			`routes.yaml:5: routes[0].auth: unknown key "api_keys" (did you mean "api_key"?)`,
			`routes.yaml:6: routes[0].auth.jwt: unknown key "algorithm" (did you mean "algorithms"?)`}},
		{"wrong types", route("    auth: {basic: {users_file: [a], cache_ttl: soon}, forward: {url: \"http://f\", request_headers: Cookie}}\n"), []string{
			`routes.yaml:4: routes[0].auth.basic.users_file: expected a string, got a list`,
			`routes.yaml:4: routes[0].auth.basic.cache_ttl: invalid duration "soon" (want e.g. 30s, 500ms, 1m30s)`,
			`routes.yaml:4: routes[0].auth.forward.request_headers: expected a list, got "Cookie"`,
			`routes.yaml:4: routes[0].auth.basic: missing users_file (an htpasswd file of bcrypt entries, e.g. users_file: htpasswd)`}},
		{"keys loaded from the file are not keys of the block", route("    auth: {api_key: {keys_file: " + testKeys + ", keys: []}}\n"), []string{
			`routes.yaml:4: routes[0].auth.api_key: unknown key "keys"`}},
		{"unset variable", route("    auth: {api_key: {keys_file: \"${SY_NO_KEYS}\"}}\n"), []string{
			`routes.yaml:4: routes[0].auth.api_key.keys_file: environment variable SY_NO_KEYS is not set (use ${SY_NO_KEYS:-default} for a default)`,
			`routes.yaml:4: routes[0].auth.api_key: missing keys_file (a YAML file of key names and SHA-256 hashes, e.g. keys_file: api-keys.yaml)`}},

		// the block and its mechanisms
		{"no mechanism", route("    auth: {}\n  - prefix: /b\n    " + ups + "\n    auth: {enabled: true}\n"), []string{
			`routes.yaml:4: routes[0].auth: needs at least one mechanism: api_key, basic, jwt or forward (or enabled: false to turn auth off)`,
			`routes.yaml:7: routes[1].auth: needs at least one mechanism: api_key, basic, jwt or forward (or enabled: false to turn auth off)`}},
		{"required keys", route("    auth:\n      api_key: {}\n      basic: {realm: r}\n      jwt: {}\n      forward: {}\n"), []string{
			`routes.yaml:5: routes[0].auth.api_key: missing keys_file (a YAML file of key names and SHA-256 hashes, e.g. keys_file: api-keys.yaml)`,
			`routes.yaml:6: routes[0].auth.basic: missing users_file (an htpasswd file of bcrypt entries, e.g. users_file: htpasswd)`,
			`routes.yaml:7: routes[0].auth.jwt: missing jwks_url (the issuer's key set, e.g. jwks_url: https://issuer.example/.well-known/jwks.json)`,
			`routes.yaml:7: routes[0].auth.jwt: missing audiences (the aud values this route accepts, e.g. audiences: [users-api]; a token the same issuer minted for another application would otherwise be admitted)`,
			`routes.yaml:8: routes[0].auth.forward: missing url (the auth service, e.g. url: http://auth.internal/check)`}},
		{"required key missing from a prepared block", "defaults:\n  auth: {enabled: false, jwt: {issuer: i}}\n" + route("    auth: {}\n"), []string{
			`routes.yaml:6: routes[0].auth.jwt: missing jwks_url (the issuer's key set, e.g. jwks_url: https://issuer.example/.well-known/jwks.json)`,
			`routes.yaml:6: routes[0].auth.jwt: missing audiences (the aud values this route accepts, e.g. audiences: [users-api]; a token the same issuer minted for another application would otherwise be admitted)`}},
		{"a bad defaults block is reported once", "defaults:\n  auth: {forward: {}}\n" + route("") + "  - prefix: /b\n    " + ups + "\n", []string{
			`routes.yaml:2: defaults.auth.forward: missing url (the auth service, e.g. url: http://auth.internal/check)`}},
		{"empty values", route("    auth:\n      api_key: {keys_file: \"\", allow: [a, \"\", a]}\n      basic: {users_file: \"\", realm: \"\", allow: [\"\"]}\n"), []string{
			`routes.yaml:5: routes[0].auth.api_key.keys_file: must not be empty (the keys file's path)`,
			`routes.yaml:5: routes[0].auth.api_key.allow[1]: empty name`,
			`routes.yaml:5: routes[0].auth.api_key.allow[2]: duplicate of allow[0]`,
			`routes.yaml:6: routes[0].auth.basic.users_file: must not be empty (the htpasswd file's path)`,
			`routes.yaml:6: routes[0].auth.basic.realm: invalid realm "": want 1 to 128 printable characters without quotes or backslashes`,
			`routes.yaml:6: routes[0].auth.basic.allow[0]: empty name`}},
		{"basic", route("    auth:\n      basic: {users_file: " + testUsers + ", realm: \"a\\\"b\", cache_ttl: 0, user_header: Authorization}\n  - prefix: /b\n    " + ups + "\n    auth: {basic: {users_file: " + testUsers + ", realm: \"a\\nb\", cache_ttl: -1s}}\n"), []string{
			`routes.yaml:5: routes[0].auth.basic.realm: invalid realm "a\"b": want 1 to 128 printable characters without quotes or backslashes`,
			`routes.yaml:5: routes[0].auth.basic.cache_ttl: must be positive (each check costs a bcrypt hash, tens of milliseconds of CPU)`,
			`routes.yaml:5: routes[0].auth.basic.user_header: "Authorization" is a credential header on this route (basic reads it); an identity header must be another one`,
			`routes.yaml:8: routes[1].auth.basic.cache_ttl: must not be negative, got -1s`,
			`routes.yaml:8: routes[1].auth.basic.realm: invalid realm "a\nb": want 1 to 128 printable characters without quotes or backslashes`}},
		{"api key headers", route("    auth: {api_key: {keys_file: " + testKeys + ", header: \"X Key\", name_header: X-Forwarded-For}}\n  - prefix: /b\n    " + ups + "\n    auth: {api_key: {keys_file: " + testKeys + ", header: connection, name_header: host}}\n  - prefix: /c\n    " + ups + "\n    auth: {api_key: {keys_file: " + testKeys + ", name_header: x-api-key}}\n"), []string{
			`routes.yaml:4: routes[0].auth.api_key.header: invalid header name "X Key"`,
			`routes.yaml:4: routes[0].auth.api_key.name_header: "X-Forwarded-For" is written by the gateway after the filters (forwarding fields, request ID); an edit would be overwritten`,
			`routes.yaml:7: routes[1].auth.api_key.header: "Connection" is a hop-by-hop, framing or Host header: it cannot carry a credential`,
			`routes.yaml:7: routes[1].auth.api_key.name_header: Host cannot carry an identity (use rewrite.host to change the Host sent upstream)`,
			`routes.yaml:10: routes[2].auth.api_key.name_header: "X-Api-Key" is a credential header on this route (api_key.header reads it); an identity header must be another one`}},

		// jwt
		{"jwt algorithms", route("    auth:\n      jwt:\n        jwks_url: https://issuer.example/jwks.json\n        algorithms: [HS256, none, rs256, RS256, RS256, ES257, XYZ123, hs512]\n        audiences: [a]\n"), []string{
			`routes.yaml:7: routes[0].auth.jwt.algorithms[0]: "HS256" is refused: a JWKS carries public keys, and HMAC keyed with a public key lets anyone sign (the algorithm-confusion attack); want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[1]: "none" is refused: an unsigned token proves nothing`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[2]: unknown algorithm "rs256" (did you mean "RS256"? want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[4]: duplicate algorithm "RS256"`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[5]: unknown algorithm "ES257" (did you mean "ES256"? want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[6]: unknown algorithm "XYZ123" (want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
			`routes.yaml:7: routes[0].auth.jwt.algorithms[7]: "hs512" is refused: a JWKS carries public keys, and HMAC keyed with a public key lets anyone sign (the algorithm-confusion attack); want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA`}},
		{"jwt keys", route("    auth:\n      jwt:\n        jwks_url: ftp://issuer.example/jwks\n        issuer: \"\"\n        audiences: []\n        algorithms: []\n        leeway: 6m\n        from: \"body:token\"\n        refresh_interval: 30s\n        timeout: 0\n"), []string{
			`routes.yaml:6: routes[0].auth.jwt.jwks_url: URL "ftp://issuer.example/jwks" must start with http:// or https://`,
			`routes.yaml:7: routes[0].auth.jwt.issuer: must not be empty (leave it out to accept any issuer)`,
			`routes.yaml:8: routes[0].auth.jwt.audiences: must not be empty (list the aud values this route accepts; a token the same issuer minted for another application would otherwise be admitted)`,
			`routes.yaml:9: routes[0].auth.jwt.algorithms: must not be empty (leave it out for RS256, ES256, EdDSA)`,
			`routes.yaml:10: routes[0].auth.jwt.leeway: must be at most 5m0s (clock skew between NTP-synced hosts is far less; more keeps expired tokens valid), got 6m0s`,
			`routes.yaml:11: routes[0].auth.jwt.from: invalid token source "body:token": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:12: routes[0].auth.jwt.refresh_interval: must be at least 1m0s (an unknown kid also triggers a fetch), got 30s`,
			`routes.yaml:13: routes[0].auth.jwt.timeout: must be positive`}},
		{"jwt urls and sources", route("    auth: {jwt: {jwks_url: \"https:///jwks\", from: \"header:\", audiences: [a, \"\", a]}}\n  - prefix: /b\n    " + ups + "\n    auth: {jwt: {jwks_url: \"https://u:secret@issuer/jwks\", audiences: [a], from: \"query:a=b\"}}\n  - prefix: /c\n    " + ups + "\n    auth: {jwt: {jwks_url: \"http://issuer:0/#k\", audiences: [a], from: \"cookie:a b\"}}\n  - prefix: /d\n    " + ups + "\n    auth: {jwt: {jwks_url: \"http://issuer/jwks#k\", audiences: [a], from: \"header:Content-Length\"}}\n  - prefix: /e\n    " + ups + "\n    auth: {jwt: {jwks_url: \"http://issuer/jwks\", audiences: [a], from: \"query:a%20b\"}}\n  - prefix: /f\n    " + ups + "\n    auth: {jwt: {jwks_url: \"http://issuer/jwks\", audiences: [a], from: \"query:a\\tb\"}}\n"), []string{
			`routes.yaml:4: routes[0].auth.jwt.jwks_url: URL "https:///jwks" has no host`,
			`routes.yaml:4: routes[0].auth.jwt.audiences[1]: empty audience`,
			`routes.yaml:4: routes[0].auth.jwt.audiences[2]: duplicate of audiences[0]`,
			`routes.yaml:4: routes[0].auth.jwt.from: invalid token source "header:": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:7: routes[1].auth.jwt.jwks_url: URL must not hold a user or password (they would show in logs)`,
			`routes.yaml:7: routes[1].auth.jwt.from: invalid token source "query:a=b": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:10: routes[2].auth.jwt.jwks_url: URL "http://issuer:0/#k" must not have a fragment`,
			`routes.yaml:10: routes[2].auth.jwt.from: invalid token source "cookie:a b": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:13: routes[3].auth.jwt.jwks_url: URL "http://issuer/jwks#k" must not have a fragment`,
			`routes.yaml:13: routes[3].auth.jwt.from: invalid token source "header:Content-Length": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:16: routes[4].auth.jwt.from: invalid token source "query:a%20b": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`,
			`routes.yaml:19: routes[5].auth.jwt.from: invalid token source "query:a\tb": want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME`}},
		{"jwt claims", route("    auth:\n      jwt:\n        jwks_url: http://issuer/jwks\n        from: header:X-Token\n        claims_to_headers: {sub: x-user, email: X-USER, \"\": X-A, role: \"X B\", org: Te, tenant: x-token}\n        required_claims: {scope: \"\", \"\": a}\n        audiences: [a]\n"), []string{
			`routes.yaml:8: routes[0].auth.jwt.claims_to_headers.: empty claim name`,
			`routes.yaml:8: routes[0].auth.jwt.claims_to_headers.org: "Te" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:8: routes[0].auth.jwt.claims_to_headers.role: invalid header name "X B"`,
			`routes.yaml:8: routes[0].auth.jwt.claims_to_headers.sub: header "X-User" is already written for claim "email" (header names are case-insensitive)`,
			`routes.yaml:8: routes[0].auth.jwt.claims_to_headers.tenant: "X-Token" is a credential header on this route (jwt.from reads it); an identity header must be another one`,
			`routes.yaml:9: routes[0].auth.jwt.required_claims.: empty claim name`,
			`routes.yaml:9: routes[0].auth.jwt.required_claims.scope: empty value (write the value the claim must hold or contain)`}},

		// forward
		{"forward", route("    auth:\n      forward:\n        url: auth.internal/check\n        timeout: 61s\n        request_headers: [cookie, Cookie, Host, Connection, x-forwarded-uri, \"a b\"]\n        response_headers: [X-User, x-user, Content-Length, X-Real-IP]\n        identity_header: X-Tenant\n"), []string{
			`routes.yaml:6: routes[0].auth.forward.url: URL "auth.internal/check" must start with http:// or https://`,
			`routes.yaml:7: routes[0].auth.forward.timeout: must be positive and at most 1m0s (every request of the route waits for the auth service), got 1m1s`,
			`routes.yaml:8: routes[0].auth.forward.request_headers[1]: duplicate header "Cookie" (header names are case-insensitive)`,
			`routes.yaml:8: routes[0].auth.forward.request_headers[2]: Host is not sent to the auth service (it gets X-Forwarded-Host)`,
			`routes.yaml:8: routes[0].auth.forward.request_headers[3]: "Connection" is a hop-by-hop or framing header: it is not forwarded`,
			`routes.yaml:8: routes[0].auth.forward.request_headers[4]: "X-Forwarded-Uri" is written by the gateway into every auth subrequest; a client's copy is never sent`,
			`routes.yaml:8: routes[0].auth.forward.request_headers[5]: invalid header name "a b"`,
			`routes.yaml:9: routes[0].auth.forward.response_headers[1]: duplicate header "X-User" (header names are case-insensitive)`,
			`routes.yaml:9: routes[0].auth.forward.response_headers[2]: "Content-Length" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:9: routes[0].auth.forward.response_headers[3]: "X-Real-Ip" is written by the gateway after the filters (forwarding fields, request ID); an edit would be overwritten`,
			`routes.yaml:10: routes[0].auth.forward.identity_header: "X-Tenant" must be one of response_headers (only those are taken from the auth service's answer)`}},
		{"forward timeout and credential clash", route("    auth: {forward: {url: \"http://f/check\", timeout: 0, response_headers: [cookie]}}\n"), []string{
			`routes.yaml:4: routes[0].auth.forward.timeout: must be positive and at most 1m0s (every request of the route waits for the auth service), got 0s`,
			`routes.yaml:4: routes[0].auth.forward.response_headers[0]: "Cookie" is a credential header on this route (forward.request_headers reads it); an identity header must be another one`}},
		{"forward identity header from the inherited response headers", "defaults:\n  auth: {enabled: false, forward: {url: \"http://f\", response_headers: [X-User]}}\n" + route("    auth: {forward: {identity_header: X-Tenant}}\n"), []string{
			`routes.yaml:6: routes[0].auth.forward.identity_header: "X-Tenant" must be one of response_headers (only those are taken from the auth service's answer)`}},

		// rate_limit key: identity
		{"identity rate limit without auth", route("    rate_limit: {rps: 1, key: identity}\n  - prefix: /b\n    " + ups + "\n    rate_limit: {rps: 1, key: identiy}\n"), []string{
			`routes.yaml:4: routes[0].rate_limit.key: key identity needs auth on this route (the identity is what auth admitted), and auth is off here`,
			`routes.yaml:7: routes[1].rate_limit.key: invalid key "identiy" (want route, client_ip, identity or header:NAME)`}},
		{"identity rate limit inherited by a route that turns auth off", "defaults:\n  rate_limit: {rps: 1, key: identity}\n  auth: {api_key: {keys_file: " + testKeys + "}}\n" + route("    auth: {enabled: false}\n"), []string{
			`routes.yaml:5: routes[0].rate_limit.key: key identity needs auth on this route (the identity is what auth admitted), and auth is off here`}},
	})
}

// Errors of the files auth blocks name: each names the route field and the file's line.
func TestAuthFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		return writeFile(t, dir, name, content)
	}
	keys := write("keys.yaml", "keys:\n  - {name: a, sha256: "+strings.Repeat("ab", 32)+"}\n  - {name: b, sha256: abc}\n")
	users := write("htpasswd", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
	big := write("big.yaml", "keys: []\n"+strings.Repeat("#", maxKeysFileSize))
	good := write("good.yaml", "keys: [{name: a, sha256: "+strings.Repeat("ab", 32)+"}]\n")
	route := func(i int, auth string) string {
		return "  - prefix: /" + itoa(i) + "\n    upstreams: [\"http://h:1\"]\n    auth: " + auth + "\n"
	}
	checkErrors(t, []errorCase{
		{"bad files", "routes:\n" +
			route(0, "{api_key: {keys_file: "+keys+"}}") +
			route(1, "{basic: {users_file: "+users+"}}") +
			route(2, "{api_key: {keys_file: "+dir+"/missing.yaml}}") +
			route(3, "{api_key: {keys_file: "+big+"}}") +
			route(4, "{api_key: {keys_file: "+keys+"}}") +
			route(5, "{basic: {users_file: "+dir+"}}"), []string{
			`routes.yaml:4: routes[0].auth.api_key.keys_file: ` + keys + `:3: keys[1].sha256: not 64 hex digits`,
			`routes.yaml:7: routes[1].auth.basic.users_file: ` + users + `:1: user "alice": {SHA} (SHA-1) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`routes.yaml:10: routes[2].auth.api_key.keys_file: ` + dir + `/missing.yaml: no such file or directory (` + dir + `/missing.yaml)`,
			`routes.yaml:13: routes[3].auth.api_key.keys_file: ` + big + `: larger than 2 MiB (` + big + `)`,
			`routes.yaml:16: routes[4].auth.api_key.keys_file: ` + keys + `:3: keys[1].sha256: not 64 hex digits`,
			`routes.yaml:19: routes[5].auth.basic.users_file: ` + dir + `: not a regular file (` + dir + `)`}},
		{"allow lists name what the files hold", "routes:\n" +
			route(0, "{api_key: {keys_file: "+good+", allow: [a, b]}, basic: {users_file: "+testUsers+", allow: [alice, carol]}}"), []string{
			`routes.yaml:4: routes[0].auth.api_key.allow[1]: no key named "b" in ` + good,
			`routes.yaml:4: routes[0].auth.basic.allow[1]: no user "carol" in ` + testUsers}},
		{"an inherited file is reported at defaults", "defaults:\n  auth: {api_key: {keys_file: " + keys + "}}\nroutes:\n" + route(0, "{api_key: {allow: [zed]}}") + route(1, "{}") + "  - {prefix: /2, upstreams: [\"http://h:1\"]}\n", []string{
			`routes.yaml:2: defaults.auth.api_key.keys_file: ` + keys + `:3: keys[1].sha256: not 64 hex digits`}},
	})
}

// writeFile writes content to dir/name and returns the file's path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The bounds on header lists and on the number of files one config may name.
func TestAuthBounds(t *testing.T) {
	names := make([]string, maxAuthHeaderNames+1)
	claims := make([]string, maxAuthHeaderNames+1)
	for i := range names {
		names[i] = "X-H" + itoa(i)
		claims[i] = "c" + itoa(i) + ": X-C" + itoa(i)
	}
	list := "[" + strings.Join(names, ", ") + "]"
	respList := strings.ReplaceAll(list, "X-H", "X-R")
	checkErrors(t, []errorCase{
		{"header lists", "routes:\n  - prefix: /a\n" + okUps + "    auth:\n      forward: {url: \"http://f\", request_headers: " + list + ", response_headers: " + respList + "}\n" +
			"      jwt: {jwks_url: \"http://i\", audiences: [a], claims_to_headers: {" + strings.Join(claims, ", ") + "}}\n", []string{
			`routes.yaml:5: routes[0].auth.forward.request_headers: at most 64 entries`,
			`routes.yaml:5: routes[0].auth.forward.response_headers: at most 64 entries`,
			`routes.yaml:6: routes[0].auth.jwt.claims_to_headers: at most 64 entries`}},
	})

	dir := t.TempDir()
	keys, err := os.ReadFile(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	var doc strings.Builder
	doc.WriteString("routes:\n")
	for i := range maxAuthFiles + 1 {
		name := writeFile(t, dir, "keys"+itoa(i)+".yaml", string(keys))
		doc.WriteString("  - prefix: /" + itoa(i) + "\n" + okUps + "    auth: {api_key: {keys_file: " + name + "}}\n")
	}
	last := filepath.Join(dir, "keys"+itoa(maxAuthFiles)+".yaml")
	checkErrors(t, []errorCase{
		{"too many files", doc.String(), []string{
			`routes.yaml:196: routes[64].auth.api_key.keys_file: ` + last + `: more than 64 keys and users files in one config`}},
	})
}
