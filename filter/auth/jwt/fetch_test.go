package jwt

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
)

func TestParseKeys(t *testing.T) {
	rs, ec, ed := rsaSigner(t), ecSigner(t), edSigner(t)
	many := `{"keys":[` + strings.Repeat(strings.TrimSuffix(strings.TrimPrefix(string(jwksJSON(t, ec)), `{"keys":[`), `]}`)+",", maxKeys) +
		strings.TrimSuffix(strings.TrimPrefix(string(jwksJSON(t, ec)), `{"keys":[`), `]}`) + `]}`
	for _, tc := range []struct {
		name string
		body string
		keys int // 0: an error
	}{
		{"three key types", string(jwksJSON(t, rs, ec, ed)), 3},
		{"unusable keys skipped", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"OKP","crv":"X25519","kid":"x","x":"` +
			strings.Repeat("A", 43) + `"},` + strings.TrimPrefix(string(jwksJSON(t, ec)), `{"keys":[`), 1},
		{"encryption key skipped", strings.Replace(string(jwksJSON(t, rs, ec)), `"use":"sig"`, `"use":"enc"`, 1), 1},
		{"private parts ignored", strings.Replace(string(jwksJSON(t, ed)), `"kty"`, `"d":"`+strings.Repeat("A", 43)+`","kty"`, 1), 1},
		{"not JSON", "nope", 0},
		{"JSON array", "[]", 0},
		{"empty", "{}", 0},
		{"keys not an array", `{"keys":{}}`, 0},
		{"only symmetric", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`, 0},
		{"bad RSA", `{"keys":[{"kty":"RSA","kid":"r","n":"!!","e":"AQAB"}]}`, 0},
		{"too many keys", many, 0},
		{"huge RSA", `{"keys":[{"kty":"RSA","kid":"huge","n":"` + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xc3}, 1025)) + `","e":"AQAB"}]}`, 0},
		{"weak RSA", `{"keys":[{"kty":"RSA","kid":"weak","n":"` + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xc3}, 128)) + `","e":"AQAB"}]}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := parseKeys([]byte(tc.body))
			switch {
			case tc.keys == 0 && err == nil:
				t.Fatalf("parsed %d keys, want an error", snap.keys)
			case tc.keys != 0 && err != nil:
				t.Fatal(err)
			case tc.keys != 0 && snap.keys != tc.keys:
				t.Fatalf("%d keys, want %d", snap.keys, tc.keys)
			}
		})
	}
}

// TestMatchingKey: a key comes out of the key function only for an alg it fits, curve
// included, even when its JWK names no alg.
func TestMatchingKey(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs, ec, ed := rsaSigner(t), ecSigner(t), edSigner(t)
	rs.jwkAlg, ec.jwkAlg, ed.jwkAlg = "", "", ""
	big := signer{kid: "ec-384", private: p384}
	snap, err := parseKeys(jwksJSON(t, rs, ec, ed, big))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg, kid string
		fits     bool
	}{
		{"RS256", rs.kid, true},
		{"PS384", rs.kid, true},
		{"ES256", rs.kid, false},
		{"EdDSA", rs.kid, false},
		{"ES256", ec.kid, true},
		{"ES384", ec.kid, false},
		{"ES256", big.kid, false},
		{"ES384", big.kid, true},
		{"EdDSA", ed.kid, true},
		{"RS256", ed.kid, false},
	} {
		token := &jwtv5.Token{Method: jwtv5.GetSigningMethod(tc.alg), Header: map[string]any{"alg": tc.alg, "kid": tc.kid}}
		key, err := snap.keyfunc(token)
		if tc.fits != (err == nil) {
			t.Errorf("%s with %s: key %T, err %v; want fits=%v", tc.alg, tc.kid, key, err, tc.fits)
		}
	}
	// Without a kid, only the keys fitting the alg are tried.
	token := &jwtv5.Token{Method: jwtv5.SigningMethodES256, Header: map[string]any{"alg": "ES256"}}
	key, err := snap.keyfunc(token)
	if set, ok := key.(jwtv5.VerificationKeySet); err != nil || !ok || len(set.Keys) != 1 {
		t.Fatalf("no kid: %v, %v", key, err)
	}
}

// TestJWKSRedirects: the JWKS client follows at most maxJWKSRedirects redirects and never
// one from https to http, where anyone on the path could substitute the keys.
func TestJWKSRedirects(t *testing.T) {
	jwks := jwksJSON(t, rsaSigner(t))
	plain := newJWKSServer(t, jwks)
	hops := http.NewServeMux() // /hop/N redirects N times before serving the JWKS
	hops.HandleFunc("/hop/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			_, _ = w.Write(jwks)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
	})
	hops.HandleFunc("/to-http", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL, http.StatusFound)
	})
	hopsTLS := httptest.NewTLSServer(hops)
	t.Cleanup(hopsTLS.Close)
	hopsPlain := httptest.NewServer(hops)
	t.Cleanup(hopsPlain.Close)

	sets := newKeySets(t)
	sets.transport.TLSClientConfig = hopsTLS.Client().Transport.(*http.Transport).TLSClientConfig
	for _, tc := range []struct {
		name    string
		url     string
		wantErr string // "" when the keys must load
	}{
		{"https to https", hopsTLS.URL + "/hop/1", ""},
		{"three redirects", hopsPlain.URL + "/hop/3", ""},
		{"four redirects", hopsPlain.URL + "/hop/4", "stopped after 3 redirects"},
		{"https to http", hopsTLS.URL + "/to-http", "refused a redirect from https to http"},
		{"http to http", hopsPlain.URL + "/to-http", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newKeySet(sets, keySetID{url: tc.url, refreshInterval: time.Minute, timeout: 5 * time.Second})
			defer s.cancel()
			before := plain.requests.Load()
			_, err := fetchKeys(context.Background(), s.client, tc.url, s.timeout)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("fetch: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("fetch: err = %v, want %q", err, tc.wantErr)
			case tc.name == "https to http" && plain.requests.Load() != before:
				t.Fatal("the http URL was fetched")
			}
		})
	}
}
