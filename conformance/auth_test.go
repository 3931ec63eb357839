package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// jwksServer serves a JWK set that a test can swap (key rotation), counting fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	s := &jwksServer{}
	s.serve(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve replaces the set the server answers with.
func (s *jwksServer) serve(t *testing.T, keys ...map[string]string) {
	body, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	x, y := make([]byte, 32), make([]byte, 32)
	k.X.FillBytes(x)
	k.Y.FillBytes(y)
	return map[string]string{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(x), "y": b64(y)}
}

// token signs claims with method and key under kid.
func token(t *testing.T, method jwtlib.SigningMethod, key any, kid string, claims jwtlib.MapClaims) string {
	t.Helper()
	tok := jwtlib.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forwardAuthService answers by the X-Test-Mode header the gateway forwards to it.
func forwardAuthService(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Secret") != "" || r.ContentLength > 0 {
			w.WriteHeader(http.StatusTeapot) // the gateway sent what it must not
			return
		}
		switch r.Header.Get("X-Test-Mode") {
		case "ok":
			w.Header().Set("X-User-Id", "u-"+r.Header.Get("X-Forwarded-Method")+"-"+r.Header.Get("X-Forwarded-Uri"))
			w.WriteHeader(http.StatusOK)
		case "path": // allows only paths under /fwd/public/, as path-based auth services do
			if !strings.HasPrefix(r.Header.Get("X-Forwarded-Uri"), "/fwd/public/") {
				http.Error(w, "not public", http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusOK)
		case "redirect":
			http.Redirect(w, r, "https://login.example.com/?next=x", http.StatusFound)
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="sso"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(s.Close)
	return s, &calls
}

// TestAuth drives the four auth mechanisms through the real binary and listener: API keys
// from a keys file (reloaded when the file changes), basic auth against a real bcrypt
// htpasswd (and a flood of wrong passwords), JWT against a JWKS server that rotates its key
// mid-test and a storm of unknown kids, forward auth against a service that admits, refuses,
// redirects, is slow and is down, and a rate limit keyed on identity.
func TestAuth(t *testing.T) {
	t.Parallel()
	be := newBackend(t, nil)
	dir := t.TempDir()
	keyHash := func(key string) string { sum := sha256.Sum256([]byte(key)); return hex.EncodeToString(sum[:]) }
	keysFile := filepath.Join(dir, "keys.yaml")
	writeFile(t, keysFile, "keys:\n  - { name: billing, sha256: "+keyHash("sk-billing")+" }\n  - { name: ops, sha256: "+keyHash("sk-ops")+" }\n")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "htpasswd")
	writeFile(t, usersFile, "# users\nalice:"+string(hash)+"\n")

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := newJWKSServer(t, rsaJWK("rsa-1", &rsaKey.PublicKey))
	fwd, fwdCalls := forwardAuthService(t)
	down := "http://" + freeAddr(t)

	q := func(s string) string { return fmt.Sprintf("%q", s) }
	routes := strings.Join([]string{
		route("/key", "auth: { api_key: { keys_file: "+q(keysFile)+", name_header: X-Key-Name, strip: true } }", be),
		route("/ops", "auth: { api_key: { keys_file: "+q(keysFile)+", allow: [ops] } }", be),
		route("/basic", "auth: { basic: { users_file: "+q(usersFile)+", realm: users, user_header: X-User } }", be),
		route("/jwt", "auth: { jwt: { jwks_url: "+q(jwks.URL)+", issuer: https://issuer.test/, audiences: [users-api],"+
			" algorithms: [RS256, ES256], claims_to_headers: { sub: X-User-Id }, required_claims: { scope: read }, strip: true } }", be),
		route("/fwd", "auth: { forward: { url: "+q(fwd.URL)+", timeout: 500ms, request_headers: [Authorization, X-Test-Mode],"+
			" response_headers: [X-User-Id], identity_header: X-User-Id } }", be),
		route("/fwd-down", "auth: { forward: { url: "+q(down)+", timeout: 500ms } }", be),
		route("/fwd-limited", "auth: { forward: { url: "+q(fwd.URL)+" } }, rate_limit: { rps: 0.01, burst: 2, key: client_ip }", be),
		route("/any", "auth: { api_key: { keys_file: "+q(keysFile)+" }, basic: { users_file: "+q(usersFile)+" },"+
			" jwt: { jwks_url: "+q(jwks.URL)+", audiences: [users-api] } }", be),
		route("/limited", "auth: { api_key: { keys_file: "+q(keysFile)+" } }, rate_limit: { rps: 0.01, burst: 2, key: identity }", be),
		route("/open", "", be),
	}, "")
	gw := startGateway(t, gatewaySpec{routes: routes, server: "access_log: true", flags: []string{"-watch=true", "-log-format", "json"}})
	client := &http.Client{Timeout: readTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	type result struct {
		status int
		header http.Header
		body   string
		seen   *received // the request as the backend got it, when it got one
	}
	var marker atomic.Int64
	send := func(path string, header ...string) result {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+gw.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("auth-%d", marker.Add(1))
		req.Header.Set("X-Request-Id", id)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		res := result{status: resp.StatusCode, header: resp.Header, body: string(body)}
		if got := be.find("X-Request-Id", id); len(got) > 0 {
			res.seen = &got[0]
		}
		return res
	}
	expect := func(what string, r result, status int) {
		t.Helper()
		if r.status != status {
			t.Fatalf("%s: status %d, want %d (%q, %v)", what, r.status, status, r.body, r.header)
		}
		if status >= 400 && r.seen != nil {
			t.Fatalf("%s: refused with %d but the upstream got the request", what, status)
		}
		if status < 300 && r.seen == nil {
			t.Fatalf("%s: admitted but the upstream never got it", what)
		}
	}
	// The gateway's own refusals carry its JSON body with the request id and say nothing
	// about which check failed.
	refusedPlainly := func(what string, r result, status int, challenge string) {
		t.Helper()
		expect(what, r, status)
		var body struct {
			Error     string `json:"error"`
			Status    int    `json:"status"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Status != status || body.RequestID == "" {
			t.Fatalf("%s: body %q, want the JSON error with a request id", what, r.body)
		}
		if challenge != "" && !strings.Contains(strings.Join(r.header.Values("Www-Authenticate"), "\n"), challenge) {
			t.Fatalf("%s: WWW-Authenticate %q, want it to hold %q", what, r.header.Values("Www-Authenticate"), challenge)
		}
	}

	t.Run("api key", func(t *testing.T) {
		refusedPlainly("no key", send("/key/a"), 401, `APIKey`)
		refusedPlainly("wrong key", send("/key/a", "X-Api-Key", "sk-billinG"), 401, `APIKey`)
		refusedPlainly("a stored hash as the key", send("/key/a", "X-Api-Key", keyHash("sk-billing")), 401, "")
		r := send("/key/a", "X-Api-Key", "sk-billing", "X-Key-Name", "admin")
		expect("right key", r, 200)
		if got := r.seen.Header.Values("X-Key-Name"); len(got) != 1 || got[0] != "billing" || r.seen.Header.Get("X-Api-Key") != "" {
			t.Fatalf("upstream saw X-Key-Name %q and X-Api-Key %q: want the gateway's name only, the key stripped",
				got, r.seen.Header.Get("X-Api-Key"))
		}
		refusedPlainly("valid key not allowed here", send("/ops/a", "X-Api-Key", "sk-billing"), 403, "")
		expect("allowed key", send("/ops/a", "X-Api-Key", "sk-ops"), 200)
	})

	t.Run("basic", func(t *testing.T) {
		refusedPlainly("no credentials", send("/basic/a"), 401, `Basic realm="users"`)
		basicAuth := func(user, pass string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		refusedPlainly("wrong password", send("/basic/a", "Authorization", basicAuth("alice", "nope")), 401, `Basic realm="users"`)
		refusedPlainly("unknown user", send("/basic/a", "Authorization", basicAuth("mallory", "s3cret")), 401, "")
		r := send("/basic/a", "Authorization", basicAuth("alice", "s3cret"), "X-User", "root")
		expect("right password", r, 200)
		if got := r.seen.Header.Values("X-User"); len(got) != 1 || got[0] != "alice" {
			t.Fatalf("upstream saw X-User %q, want alice only", got)
		}
		// A flood of wrong passwords: each costs a bcrypt compare, bounded in how many run
		// at once; the gateway keeps answering and the cached user keeps getting in.
		var wg sync.WaitGroup
		var unexpected atomic.Int64
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := send("/basic/flood", "Authorization", basicAuth("alice", fmt.Sprint("guess-", i)))
				if r.status != 401 && r.status != 503 {
					unexpected.Add(1)
				}
			}()
		}
		for range 5 {
			expect("cached user during the flood", send("/basic/a", "Authorization", basicAuth("alice", "s3cret")), 200)
		}
		wg.Wait()
		if n := unexpected.Load(); n > 0 {
			t.Fatalf("%d flood requests got a status other than 401 or 503", n)
		}
	})

	t.Run("jwt", func(t *testing.T) {
		now := time.Now()
		claims := func(edit func(jwtlib.MapClaims)) jwtlib.MapClaims {
			c := jwtlib.MapClaims{"iss": "https://issuer.test/", "aud": []string{"users-api"}, "sub": "user-7",
				"scope": "read write", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
			if edit != nil {
				edit(c)
			}
			return c
		}
		bearer := func(tok string) string { return "Bearer " + tok }
		good := token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(nil))
		// The first fetch of the JWKS happens in the background: poll until it is in.
		if err := waitUntil(readTimeout, func() error {
			if r := send("/jwt/a", "Authorization", bearer(good)); r.status != 200 {
				return fmt.Errorf("valid token: %d %q", r.status, r.body)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r := send("/jwt/a", "Authorization", bearer(good), "X-User-Id", "admin")
		expect("valid token", r, 200)
		if got := r.seen.Header.Values("X-User-Id"); len(got) != 1 || got[0] != "user-7" || r.seen.Header.Get("Authorization") != "" {
			t.Fatalf("upstream saw X-User-Id %q, Authorization %q: want the claim only, the token stripped", got, r.seen.Header.Get("Authorization"))
		}
		pub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		unsigned, err := jwtlib.NewWithClaims(jwtlib.SigningMethodNone, claims(nil)).SignedString(jwtlib.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		attacks := []struct{ name, token string }{
			{"alg none", unsigned},
			{"HS256 with the public key as secret", token(t, jwtlib.SigningMethodHS256, pubPEM, "rsa-1", claims(nil))},
			{"expired", token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(func(c jwtlib.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))},
			{"wrong audience", token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(func(c jwtlib.MapClaims) { c["aud"] = "billing-api" }))},
			{"wrong issuer", token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(func(c jwtlib.MapClaims) { c["iss"] = "https://evil.test/" }))},
			{"not yet valid", token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(func(c jwtlib.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))},
			{"tampered", good[:len(good)-4] + "AAAA"},
			{"garbage", "not.a.jwt"},
		}
		for _, a := range attacks {
			refusedPlainly(a.name, send("/jwt/a", "Authorization", bearer(a.token)), 401, `Bearer`)
		}
		refusedPlainly("missing scope", send("/jwt/a", "Authorization",
			bearer(token(t, jwtlib.SigningMethodRS256, rsaKey, "rsa-1", claims(func(c jwtlib.MapClaims) { c["scope"] = "write" })))), 403, "")

		// Rotation: the issuer replaces its RSA key with an EC one. A token of the new key
		// gets in once the unknown kid made the gateway refetch; the removed key's tokens
		// are refused from then on.
		jwks.serve(t, ecJWK("ec-2", &ecKey.PublicKey))
		rotated := token(t, jwtlib.SigningMethodES256, ecKey, "ec-2", claims(nil))
		if err := waitUntil(20*time.Second, func() error {
			if r := send("/jwt/a", "Authorization", bearer(rotated)); r.status != 200 {
				return fmt.Errorf("token of the new key: %d", r.status)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		refusedPlainly("token of the removed key", send("/jwt/a", "Authorization", bearer(good)), 401, "")

		// A storm of unknown kids: every one refused, and the JWKS server sees at most a
		// couple of refetches, not one per token.
		before := jwks.fetches.Load()
		for i := range 40 {
			forged := token(t, jwtlib.SigningMethodES256, ecKey, fmt.Sprint("kid-", i), claims(nil))
			refusedPlainly("unknown kid", send("/jwt/a", "Authorization", bearer(forged)), 401, "")
		}
		if n := jwks.fetches.Load() - before; n > 2 {
			t.Fatalf("40 unknown kids made %d JWKS fetches, want at most 2", n)
		}
	})

	t.Run("forward", func(t *testing.T) {
		r := send("/fwd/a?x=1", "X-Test-Mode", "ok", "X-Secret", "s", "X-User-Id", "spoofed")
		expect("admitted", r, 200)
		if got := r.seen.Header.Values("X-User-Id"); len(got) != 1 || got[0] != "u-GET-/fwd/a?x=1" {
			t.Fatalf("upstream saw X-User-Id %q, want the auth service's only", got)
		}
		r = send("/fwd/a", "X-Test-Mode", "deny")
		expect("denied", r, 401)
		if r.header.Get("Www-Authenticate") != `Bearer realm="sso"` || !strings.Contains(r.body, "who are you") {
			t.Fatalf("denied: WWW-Authenticate %q body %q, want the auth service's answer relayed", r.header.Get("Www-Authenticate"), r.body)
		}
		r = send("/fwd/a", "X-Test-Mode", "redirect")
		expect("redirected", r, 302)
		if r.header.Get("Location") != "https://login.example.com/?next=x" {
			t.Fatalf("redirect: Location %q", r.header.Get("Location"))
		}
		// The auth service judges the path the upstream gets, never the raw target: a
		// dot-segment cannot walk out of what it allows.
		expect("allowed path", send("/fwd/public/x", "X-Test-Mode", "path"), 200)
		for _, sneaky := range []string{"/fwd/public/%2e%2e/admin", "/fwd/public/%2E%2E/admin"} {
			if r := send(sneaky, "X-Test-Mode", "path"); r.status != 401 || r.seen != nil {
				t.Fatalf("%s: status %d (upstream reached: %v), want 401 from the auth service", sneaky, r.status, r.seen != nil)
			}
		}
		refusedPlainly("slow auth service", send("/fwd/a", "X-Test-Mode", "slow"), 503, "")
		refusedPlainly("auth service down", send("/fwd-down/a"), 503, "")
		if fwdCalls.Load() < 4 {
			t.Fatalf("auth service called %d times", fwdCalls.Load())
		}
	})

	t.Run("unauthenticated flood meets the rate limit first", func(t *testing.T) {
		before := fwdCalls.Load()
		for i := range 2 {
			expect(fmt.Sprint("refused by the auth service ", i), send("/fwd-limited/a"), 401)
		}
		for range 5 {
			refusedPlainly("over the client's limit", send("/fwd-limited/a"), 429, "")
		}
		if n := fwdCalls.Load() - before; n != 2 {
			t.Fatalf("the auth service was asked %d times, want 2 (the limit answers before auth)", n)
		}
	})

	t.Run("identity trailer", func(t *testing.T) {
		c := dial(t, gw.addr)
		resp, _ := c.mustRoundTrip(t, request("POST /key/trailer HTTP/1.1", "Host: gw", "X-Api-Key: sk-ops",
			"X-Request-Id: auth-trailer", "Transfer-Encoding: chunked", "Trailer: X-Key-Name, X-Checksum")+
			"2\r\nhi\r\n0\r\nX-Key-Name: admin\r\nX-Checksum: 1\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := be.find("X-Request-Id", "auth-trailer")
		if len(got) != 1 {
			t.Fatalf("upstream got %d requests", len(got))
		}
		if v := got[0].Header.Values("X-Key-Name"); len(v) != 1 || v[0] != "ops" {
			t.Fatalf("upstream X-Key-Name header %q, want the gateway's", v)
		}
		if v := got[0].Trailer.Values("X-Key-Name"); len(v) != 0 || got[0].Trailer.Get("X-Checksum") != "1" {
			t.Fatalf("upstream trailers %v: want X-Checksum and no X-Key-Name", got[0].Trailer)
		}
	})

	t.Run("any of several", func(t *testing.T) {
		expect("api key", send("/any/a", "X-Api-Key", "sk-ops"), 200)
		expect("basic", send("/any/a", "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))), 200)
		r := send("/any/a")
		refusedPlainly("nothing", r, 401, "")
		if n := len(r.header.Values("Www-Authenticate")); n != 3 {
			t.Fatalf("%d WWW-Authenticate values, want one per mechanism: %q", n, r.header.Values("Www-Authenticate"))
		}
	})

	t.Run("rate limit by identity", func(t *testing.T) {
		for i := range 2 {
			expect(fmt.Sprint("billing ", i), send("/limited/a", "X-Api-Key", "sk-billing"), 200)
		}
		refusedPlainly("billing over its limit", send("/limited/a", "X-Api-Key", "sk-billing"), 429, "")
		expect("ops has its own bucket", send("/limited/a", "X-Api-Key", "sk-ops"), 200)
	})

	t.Run("keys file reload", func(t *testing.T) {
		writeFile(t, keysFile, "keys:\n  - { name: billing, sha256: "+keyHash("sk-billing-2")+" }\n  - { name: ops, sha256: "+keyHash("sk-ops")+" }\n")
		if err := waitUntil(readTimeout, func() error {
			if r := send("/key/a", "X-Api-Key", "sk-billing-2"); r.status != 200 {
				return fmt.Errorf("new key: %d", r.status)
			}
			return nil
		}); err != nil {
			for _, l := range gatewayLines(gw.jsonLog(t)) {
				if l.str("msg") != "access" {
					t.Log(l.raw)
				}
			}
			t.Fatal(err)
		}
		refusedPlainly("the replaced key", send("/key/a", "X-Api-Key", "sk-billing"), 401, "")
		// A broken keys file is refused and the keys in force keep serving.
		writeFile(t, keysFile, "keys:\n  - { name: billing, sha256: nothex }\n  - { name: ops, sha256: "+keyHash("sk-ops")+" }\n")
		if err := waitUntil(readTimeout, func() error {
			for _, l := range logged(gatewayLines(gw.jsonLog(t)), "config reload rejected; previous config still serving") {
				if strings.Contains(l.str("error"), "keys.yaml:2: keys[0].sha256") {
					return nil
				}
			}
			return fmt.Errorf("no rejected reload naming keys.yaml's line")
		}); err != nil {
			t.Fatal(err)
		}
		expect("key in force after a bad edit", send("/key/a", "X-Api-Key", "sk-billing-2"), 200)
	})

	t.Run("access log and metrics", func(t *testing.T) {
		lines := logged(gatewayLines(gw.jsonLog(t)), "access")
		identities := map[string]bool{}
		for _, l := range lines {
			identities[l.str("identity")] = true
			if strings.Contains(l.raw, "sk-billing") || strings.Contains(l.raw, "s3cret") {
				t.Fatalf("a credential reached the log: %s", l.raw)
			}
		}
		for _, want := range []string{"api_key:billing", "basic:alice", "jwt:user-7", "forward:u-GET-/fwd/a?x=1"} {
			if !identities[want] {
				t.Errorf("no access line with identity %q (have %v)", want, identities)
			}
		}
		resp, err := http.Get("http://" + gw.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		metrics, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`switchyard_auth_decisions_total{mechanism="api_key"`, `mechanism="jwt"`, `mechanism="forward"`, `mechanism="basic"`} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as editors and config management do: a watcher never reads half.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
