package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const okUps = "    upstreams: [\"http://h:1\"]\n"

// A block naming every mechanism with only its required keys gets the built-in values,
// header names canonicalized, and the files read.
func TestAuthDefaults(t *testing.T) {
	c := mustParse(t, "routes:\n  - prefix: /a\n"+okUps+"    auth:\n"+
		"      api_key: {keys_file: "+testKeys+"}\n"+
		"      basic: {users_file: "+testUsers+"}\n"+
		"      jwt: {jwks_url: \"https://issuer.example/jwks.json\", audiences: [users-api]}\n"+
		"      forward: {url: \"http://auth.internal/check\"}\n")
	a := c.Routes[0].Auth
	if a == nil || a.Enabled == nil || !*a.Enabled {
		t.Fatalf("auth = %+v, want enabled", a)
	}
	billing, _ := hex.DecodeString("fae753df059d1aaa02b5fce22fbc90ba2d91df1c1908d333c1346f81b16b4499")
	reports := sha256.Sum256([]byte("reports-key-2"))
	wantKeys := []APIKey{{Name: "billing", SHA256: [32]byte(billing)}, {Name: "reports", SHA256: reports}}
	if k := a.APIKey; k.Header != "X-Api-Key" || k.NameHeader != "" || k.Strip || k.Allow != nil || !reflect.DeepEqual(k.Keys, wantKeys) {
		t.Errorf("api_key = %+v", k)
	}
	if b := a.Basic; b.Realm != "switchyard" || b.CacheTTL != 5*time.Minute || len(b.Users) != 2 ||
		string(b.Users["alice"][:7]) != "$2a$04$" || string(b.Users["bob"][:7]) != "$2y$04$" {
		t.Errorf("basic = %+v", b)
	}
	wantJWT := JWTAuth{JWKSURL: "https://issuer.example/jwks.json", Audiences: []string{"users-api"}, Algorithms: []string{"RS256", "ES256", "EdDSA"}, Leeway: 30 * time.Second,
		From: "header:Authorization", RefreshInterval: 10 * time.Minute, Timeout: 5 * time.Second}
	if !reflect.DeepEqual(*a.JWT, wantJWT) {
		t.Errorf("jwt = %+v\nwant %+v", *a.JWT, wantJWT)
	}
	wantForward := ForwardAuth{URL: "http://auth.internal/check", Timeout: 2 * time.Second, RequestHeaders: []string{"Authorization", "Cookie"}}
	if !reflect.DeepEqual(*a.Forward, wantForward) {
		t.Errorf("forward = %+v\nwant %+v", *a.Forward, wantForward)
	}
	if c.Defaults.Auth != nil {
		t.Errorf("defaults auth = %+v, want off", c.Defaults.Auth)
	}

	var want []AuthFile
	for _, name := range []string{testKeys, testUsers} {
		abs, _ := filepath.Abs(name)
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		want = append(want, AuthFile{Path: abs, Digest: sum[:]})
	}
	slices.SortFunc(want, func(a, b AuthFile) int { return strings.Compare(a.Path, b.Path) })
	if !reflect.DeepEqual(c.AuthFiles, want) {
		t.Errorf("AuthFiles = %+v\nwant %+v", c.AuthFiles, want)
	}
}

// Header names are canonicalized on load, so the mechanisms compare them as net/http does.
func TestAuthCanonicalHeaders(t *testing.T) {
	c := mustParse(t, "routes:\n  - prefix: /a\n"+okUps+"    auth:\n"+
		"      api_key: {keys_file: "+testKeys+", header: x-key, name_header: x-key-name}\n"+
		"      basic: {users_file: "+testUsers+", user_header: x-USER}\n"+
		"      jwt: {jwks_url: \"http://i/j\", audiences: [a], from: \"header:x-token\", claims_to_headers: {sub: x-sub}}\n"+
		"      forward: {url: \"http://f\", request_headers: [cookie], response_headers: [x-tenant-id], identity_header: X-TENANT-ID}\n")
	a := c.Routes[0].Auth
	got := []string{a.APIKey.Header, a.APIKey.NameHeader, a.Basic.UserHeader, a.JWT.From, a.JWT.ClaimsToHeaders["sub"],
		a.Forward.RequestHeaders[0], a.Forward.ResponseHeaders[0], a.Forward.IdentityHeader}
	want := []string{"X-Key", "X-Key-Name", "X-User", "header:X-Token", "X-Sub", "Cookie", "X-Tenant-Id", "X-Tenant-Id"}
	if !slices.Equal(got, want) {
		t.Fatalf("headers = %q, want %q", got, want)
	}
	// Query and cookie names are case-sensitive: kept as written.
	for _, from := range []string{"query:Access_Token", "cookie:Session"} {
		c := mustParse(t, "routes:\n  - prefix: /a\n"+okUps+"    auth: {jwt: {jwks_url: \"http://i\", audiences: [a], from: \""+from+"\"}}\n")
		if got := c.Routes[0].Auth.JWT.From; got != from {
			t.Errorf("from %q loaded as %q", from, got)
		}
	}
}

// How routes inherit the defaults' auth block.
func TestAuthInheritance(t *testing.T) {
	const defaults = "defaults:\n  auth:\n    api_key: {keys_file: " + testKeys + ", name_header: X-Key-Name}\n    jwt: {jwks_url: \"http://issuer/jwks\", issuer: \"http://issuer/\", audiences: [all], leeway: 0}\n"
	const prepared = "defaults:\n  auth: {enabled: false, jwt: {jwks_url: \"http://issuer/jwks\", audiences: [all]}}\n"
	route := func(auth string) string {
		s := "routes:\n  - prefix: /a\n" + okUps
		if auth != "" {
			s += "    auth: " + auth + "\n"
		}
		return s
	}
	type mechanisms struct{ apiKey, basic, jwt, forward bool }
	tests := []struct {
		name  string
		yaml  string
		want  *mechanisms // nil: auth off
		check func(t *testing.T, a *Auth)
	}{
		{"no auth anywhere", route(""), nil, nil},
		{"inherited whole", defaults + route(""), &mechanisms{apiKey: true, jwt: true}, func(t *testing.T, a *Auth) {
			if a.APIKey.NameHeader != "X-Key-Name" || a.JWT.Issuer != "http://issuer/" || a.JWT.Leeway != 0 || len(a.APIKey.Keys) != 2 {
				t.Errorf("auth = %+v %+v", a.APIKey, a.JWT)
			}
		}},
		{"turned off", defaults + route("{enabled: false}"), nil, nil},
		{"a route's mechanisms replace the defaults' set", defaults + route("{basic: {users_file: "+testUsers+"}}"), &mechanisms{basic: true}, nil},
		{"a written mechanism takes unwritten keys from the defaults' one", defaults + route("{jwt: {audiences: [orders]}}"), &mechanisms{jwt: true}, func(t *testing.T, a *Auth) {
			j := a.JWT
			if j.JWKSURL != "http://issuer/jwks" || j.Issuer != "http://issuer/" || !slices.Equal(j.Audiences, []string{"orders"}) || j.Leeway != 0 || j.Timeout != 5*time.Second {
				t.Errorf("jwt = %+v", j)
			}
		}},
		{"a written mechanism takes the defaults' audiences, which it must have", defaults + route("{jwt: {leeway: 5s}}"), &mechanisms{jwt: true}, func(t *testing.T, a *Auth) {
			if j := a.JWT; !slices.Equal(j.Audiences, []string{"all"}) || j.Leeway != 5*time.Second {
				t.Errorf("jwt = %+v", j)
			}
		}},
		{"a written key replaces the defaults' value", defaults + route("{api_key: {allow: [billing], name_header: X-Who}}"), &mechanisms{apiKey: true}, func(t *testing.T, a *Auth) {
			if k := a.APIKey; k.KeysFile != testKeys || !slices.Equal(k.Allow, []string{"billing"}) || k.NameHeader != "X-Who" || k.Header != "X-Api-Key" {
				t.Errorf("api_key = %+v", k)
			}
		}},
		{"a prepared block is off", prepared + route(""), nil, nil},
		{"an empty block turns a prepared block on", prepared + route("{}"), &mechanisms{jwt: true}, func(t *testing.T, a *Auth) {
			if !slices.Equal(a.JWT.Audiences, []string{"all"}) || a.JWT.Leeway != 30*time.Second {
				t.Errorf("jwt = %+v", a.JWT)
			}
		}},
		{"enabled: true turns a prepared block on", prepared + route("{enabled: true}"), &mechanisms{jwt: true}, nil},
		{"a null block too", prepared + route("~"), &mechanisms{jwt: true}, nil},
		{"a route's own block without defaults", route("{forward: {url: \"http://f\"}}"), &mechanisms{forward: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.yaml)
			a := c.Routes[0].Auth
			if tc.want == nil {
				if a != nil {
					t.Fatalf("auth = %+v, want off", a)
				}
				return
			}
			if a == nil {
				t.Fatal("auth off")
			}
			got := mechanisms{a.APIKey != nil, a.Basic != nil, a.JWT != nil, a.Forward != nil}
			if got != *tc.want || a.Enabled == nil || !*a.Enabled {
				t.Fatalf("mechanisms %+v enabled %v, want %+v enabled", got, a.Enabled, *tc.want)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
		})
	}
}

// Inherited blocks are copies: a route's block shares no pointer, slice or map with the
// defaults' or another route's, except the keys and users read from a file (read-only).
func TestAuthBlocksAreCopies(t *testing.T) {
	c := mustParse(t, "defaults:\n  auth: {jwt: {jwks_url: \"http://i\", audiences: [a], claims_to_headers: {sub: X-Sub}}, api_key: {keys_file: "+testKeys+"}}\n"+
		"routes:\n  - prefix: /a\n"+okUps+"  - prefix: /b\n"+okUps)
	a, b := c.Routes[0].Auth, c.Routes[1].Auth
	if a == b || a.JWT == b.JWT || a == c.Defaults.Auth {
		t.Fatal("routes share an auth block")
	}
	a.JWT.Audiences[0] = "changed"
	a.JWT.ClaimsToHeaders["sub"] = "X-Changed"
	if b.JWT.Audiences[0] != "a" || b.JWT.ClaimsToHeaders["sub"] != "X-Sub" || c.Defaults.Auth.JWT.Audiences[0] != "a" {
		t.Fatal("a change to one route's jwt block shows in another's")
	}
	if len(c.AuthFiles) != 1 {
		t.Fatalf("AuthFiles = %+v, want the keys file once", c.AuthFiles)
	}
}

// Routes naming one keys or users file, inherited or written (under another spelling of
// the path), share what was read from it: one Users map and one Keys array however many
// routes use them, so a large file costs its size once. Neither goes into a block's JSON,
// which the gateway compares across reloads (with the files' digests) and which must stay
// small and free of hashes.
func TestAuthFilesShared(t *testing.T) {
	c := mustParse(t, "defaults:\n  auth: {basic: {users_file: "+testUsers+"}, api_key: {keys_file: "+testKeys+"}}\n"+
		"routes:\n  - prefix: /a\n"+okUps+"  - prefix: /b\n"+okUps+
		"  - prefix: /c\n"+okUps+"    auth: {basic: {users_file: ./"+testUsers+", realm: c}, api_key: {keys_file: ./"+testKeys+"}}\n")
	first := c.Routes[0].Auth
	for i, r := range c.Routes {
		a := r.Auth
		if reflect.ValueOf(a.Basic.Users).UnsafePointer() != reflect.ValueOf(first.Basic.Users).UnsafePointer() || len(a.Basic.Users) == 0 {
			t.Errorf("routes[%d] has its own users map", i)
		}
		if len(a.APIKey.Keys) == 0 || &a.APIKey.Keys[0] != &first.APIKey.Keys[0] {
			t.Errorf("routes[%d] has its own keys", i)
		}
		text, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{`"Users"`, `"Keys"`, "SHA256", "$2a$", "alice"} {
			if strings.Contains(string(text), leak) {
				t.Errorf("routes[%d]: the block's JSON holds %q: %s", i, leak, text)
			}
		}
	}
	if len(c.AuthFiles) != 2 {
		t.Errorf("AuthFiles = %+v, want each file once", c.AuthFiles)
	}
}

// Load reads keys and users files relative to the config file's directory; Parse, which
// has no file, relative to the working directory.
func TestAuthFilesRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	keys, err := os.ReadFile(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "keys.yaml", string(keys))
	doc := "routes:\n  - prefix: /a\n" + okUps + "    auth: {api_key: {keys_file: keys.yaml}}\n"
	cfgPath := writeFile(t, dir, "routes.yaml", doc)
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes[0].Auth.APIKey.Keys) != 2 || len(c.AuthFiles) != 1 || c.AuthFiles[0].Path != filepath.Join(dir, "keys.yaml") {
		t.Fatalf("keys %+v files %+v", c.Routes[0].Auth.APIKey.Keys, c.AuthFiles)
	}
	if _, err := Parse("etcd:/switchyard/config@rev 3", []byte(doc)); err == nil {
		t.Fatal("Parse found keys.yaml beside the config file, want the working directory")
	}
	// ${VAR} applies to file names as to every value.
	t.Setenv("SY_KEYS", testKeys)
	c = mustParse(t, "routes:\n  - prefix: /a\n"+okUps+"    auth: {api_key: {keys_file: \"${SY_KEYS}\"}}\n")
	if len(c.Routes[0].Auth.APIKey.Keys) != 2 {
		t.Fatal("keys file named through ${SY_KEYS} not read")
	}
}

// A file changed between two loads gives a different digest, so the reloader can tell.
func TestAuthFileDigest(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "htpasswd", "alice:$2a$04$xXg5mQBT7aP2VLgIjZrFVOPRteRePA9ODwTOkeX5TZ1b9NMLIeKGe\n")
	doc := "routes:\n  - prefix: /a\n" + okUps + "    auth: {basic: {users_file: " + path + "}}\n"
	first := mustParse(t, doc)
	writeFile(t, dir, "htpasswd", "bob:$2a$04$xXg5mQBT7aP2VLgIjZrFVOPRteRePA9ODwTOkeX5TZ1b9NMLIeKGe\n")
	second := mustParse(t, doc)
	if reflect.DeepEqual(first.AuthFiles[0].Digest, second.AuthFiles[0].Digest) || second.Routes[0].Auth.Basic.Users["bob"] == nil {
		t.Fatal("a changed users file gave the same digest or the old users")
	}
}

// rate_limit.key: identity loads on a route with auth, inherited or its own.
func TestRateLimitKeyIdentity(t *testing.T) {
	c := mustParse(t, "defaults:\n  rate_limit: {rps: 5, key: identity}\n  auth: {api_key: {keys_file: "+testKeys+"}}\n"+
		"routes:\n  - prefix: /a\n"+okUps+"  - prefix: /b\n"+okUps+"    auth: {forward: {url: \"http://f\", response_headers: [X-User], identity_header: X-User}}\n")
	for i, r := range c.Routes {
		if r.RateLimit == nil || r.RateLimit.Key != RateLimitKeyIdentity || r.Auth == nil {
			t.Errorf("route %d: rate_limit %+v auth %+v", i, r.RateLimit, r.Auth)
		}
	}
}

// WithDefaults completes auth mechanism blocks built in code as the loader does.
func TestWithDefaultsAuth(t *testing.T) {
	j := WithDefaults(&JWTAuth{JWKSURL: "http://i", Leeway: 0, Algorithms: []string{"ES384"}})
	if j.Leeway != 0 || !slices.Equal(j.Algorithms, []string{"ES384"}) || j.From != "header:Authorization" || j.Timeout != 5*time.Second || j.RefreshInterval != 10*time.Minute {
		t.Errorf("jwt = %+v", j)
	}
	users := map[string][]byte{"u": []byte("h")}
	b := WithDefaults(&BasicAuth{UsersFile: "f", Users: users})
	if b.Realm != "switchyard" || b.CacheTTL != 5*time.Minute || string(b.Users["u"]) != "h" {
		t.Errorf("basic = %+v", b)
	}
	if k := WithDefaults[APIKeyAuth](nil); k.Header != "X-Api-Key" {
		t.Errorf("api_key = %+v", k)
	}
	f := WithDefaults(&ForwardAuth{URL: "http://f"})
	f.RequestHeaders[0] = "changed"
	if builtinForward.RequestHeaders[0] != "Authorization" || WithDefaults(&ForwardAuth{}).Timeout != 2*time.Second {
		t.Error("WithDefaults shared the built-in forward block's slice or missed its timeout")
	}
}

// Parse and WithDefaults agree on the mechanisms' fields that have a default, as
// TestWithDefaultsAgreesWithValidation checks for the policy blocks: an explicit zero that
// validation accepts is kept by both, one it refuses means "left out" to WithDefaults.
func TestWithDefaultsAgreesWithValidationAuth(t *testing.T) {
	mechanisms := []struct {
		key      string
		required string
		builtin  any
		complete func() reflect.Value // WithDefaults of a block with only the required fields
		parsed   func(a *Auth) any
	}{
		{"api_key", "keys_file: " + testKeys, builtinAPIKey, func() reflect.Value { return reflect.ValueOf(*WithDefaults(&APIKeyAuth{KeysFile: "k"})) }, func(a *Auth) any { return a.APIKey }},
		{"basic", "users_file: " + testUsers, builtinBasic, func() reflect.Value { return reflect.ValueOf(*WithDefaults(&BasicAuth{UsersFile: "u"})) }, func(a *Auth) any { return a.Basic }},
		{"jwt", "jwks_url: \"http://i\", audiences: [a]", builtinJWT, func() reflect.Value { return reflect.ValueOf(*WithDefaults(&JWTAuth{JWKSURL: "http://i"})) }, func(a *Auth) any { return a.JWT }},
		{"forward", "url: \"http://f\"", builtinForward, func() reflect.Value { return reflect.ValueOf(*WithDefaults(&ForwardAuth{URL: "http://f"})) }, func(a *Auth) any { return a.Forward }},
	}
	checked := 0
	for _, m := range mechanisms {
		builtin := reflect.ValueOf(m.builtin)
		fields, names := fieldsOf(builtin.Type())
		for _, name := range names {
			def := builtin.FieldByIndex(fields[name])
			lit := zeroLiteral(def.Kind())
			if def.IsZero() || lit == "" {
				continue
			}
			checked++
			path := "auth." + m.key + "." + name
			t.Run(path, func(t *testing.T) {
				doc := "routes:\n  - prefix: /\n" + okUps + "    auth: {" + m.key + ": {" + m.required + ", " + name + ": " + lit + "}}\n"
				c, err := Parse("routes.yaml", []byte(doc))
				if err != nil {
					if !strings.Contains(err.Error(), "routes[0]."+path+":") {
						t.Fatalf("explicit zero refused, but not for this field: %v", err)
					}
					if got := m.complete().FieldByIndex(fields[name]); !reflect.DeepEqual(got.Interface(), def.Interface()) {
						t.Fatalf("validation refuses an explicit zero, so zero means left out: WithDefaults gave %v, want the built-in %v", got, def)
					}
					return
				}
				if f := reflect.ValueOf(m.parsed(c.Routes[0].Auth)).Elem().FieldByIndex(fields[name]); !f.IsZero() && !(f.Kind() == reflect.Slice && f.Len() == 0) {
					t.Fatalf("Parse accepted an explicit zero but resolved it to %v", f)
				}
				if !zeroIsSetting[m.key+"."+name] && def.Kind() != reflect.Slice {
					t.Fatalf("Parse accepts an explicit zero, but zeroIsSetting does not list %s.%s: WithDefaults would replace it", m.key, name)
				}
			})
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d fields", checked)
	}
}

// The full example's auth route loads with its files read relative to the example.
func TestLoadFullExampleAuth(t *testing.T) {
	t.Setenv("ETCD_PASSWORD", "s3cret")
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	billing := c.Routes[6]
	a := billing.Auth
	if billing.Prefix != "/api/billing" || a == nil || len(a.APIKey.Keys) != 2 || len(a.Basic.Users) != 2 || a.JWT.RequiredClaims["scope"] != "billing:read" ||
		a.Forward.IdentityHeader != "X-Tenant" || billing.RateLimit.Key != RateLimitKeyIdentity {
		t.Fatalf("billing route: %+v auth %+v", billing, a)
	}
	if len(c.AuthFiles) != 2 || !strings.HasSuffix(c.AuthFiles[0].Path, "testdata/auth/api-keys.yaml") || !strings.HasSuffix(c.AuthFiles[1].Path, "testdata/auth/htpasswd") {
		t.Fatalf("AuthFiles = %+v", c.AuthFiles)
	}
	// A parsed block is complete: WithDefaults, which the mechanisms may apply, keeps it.
	if !reflect.DeepEqual(WithDefaults(a.APIKey), a.APIKey) || !reflect.DeepEqual(WithDefaults(a.Basic), a.Basic) ||
		!reflect.DeepEqual(WithDefaults(a.JWT), a.JWT) || !reflect.DeepEqual(WithDefaults(a.Forward), a.Forward) {
		t.Error("WithDefaults changed a parsed mechanism block")
	}
	for i, r := range c.Routes[:6] {
		if r.Auth != nil {
			t.Errorf("route %d has auth %+v", i, r.Auth)
		}
	}
}
