package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	jwtv5 "github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// signer is a test key: its private half signs tokens, its public half goes in a JWKS.
type signer struct {
	kid     string
	alg     string // the token's alg
	jwkAlg  string // the alg published in the JWKS ("" for none)
	method  jwtv5.SigningMethod
	private crypto.Signer
}

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
)

// testKeys generates the package's keys once: RSA generation is slow.
func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

func rsaSigner(t testing.TB) signer {
	testKeys(t)
	return signer{kid: "rsa-1", alg: "RS256", jwkAlg: "RS256", method: jwtv5.SigningMethodRS256, private: rsaKey}
}

func rsaSigner2(t testing.TB) signer {
	testKeys(t)
	return signer{kid: "rsa-2", alg: "RS256", jwkAlg: "RS256", method: jwtv5.SigningMethodRS256, private: rsaKey2}
}

func ecSigner(t testing.TB) signer {
	testKeys(t)
	return signer{kid: "ec-1", alg: "ES256", jwkAlg: "ES256", method: jwtv5.SigningMethodES256, private: ecKey}
}

func edSigner(t testing.TB) signer {
	testKeys(t)
	return signer{kid: "ed-1", alg: "EdDSA", jwkAlg: "EdDSA", method: jwtv5.SigningMethodEdDSA, private: edKey}
}

// sign makes a token with claims; header entries override the defaults (kid, alg).
func (s signer) sign(t testing.TB, claims jwtv5.MapClaims) string {
	t.Helper()
	tok := jwtv5.NewWithClaims(s.method, claims)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.private)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jwksJSON is the JWKS publishing the signers' public keys.
func jwksJSON(t testing.TB, signers ...signer) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, s := range signers {
		jwk, err := jwkset.NewJWKFromKey(s.private.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: s.kid, ALG: jwkset.ALG(s.jwkAlg), USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// validClaims are claims every testConfig mechanism admits.
func validClaims() jwtv5.MapClaims {
	now := time.Now()
	return jwtv5.MapClaims{
		"iss": "https://issuer.test/",
		"aud": "users-api",
		"sub": "alice",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// with returns a copy of c with the given claims set (nil deletes).
func with(c jwtv5.MapClaims, kv ...any) jwtv5.MapClaims {
	out := jwtv5.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// testConfig is a jwt block with the loader's defaults filled in by hand.
func testConfig(jwksURL string) *config.JWTAuth {
	return &config.JWTAuth{
		JWKSURL:         jwksURL,
		Issuer:          "https://issuer.test/",
		Audiences:       []string{"users-api", "admin-api"},
		Algorithms:      []string{"RS256", "ES256", "EdDSA"},
		Leeway:          30 * time.Second,
		From:            "header:Authorization",
		RefreshInterval: 10 * time.Minute,
		Timeout:         5 * time.Second,
	}
}

// staticKeySet is a loaded key set with no goroutine and no network: it never refreshes.
func staticKeySet(t testing.TB, jwks []byte) *KeySet {
	t.Helper()
	snap, err := parseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &KeySet{
		ctx:               ctx,
		cancel:            cancel,
		done:              make(chan struct{}),
		firstAttempt:      make(chan struct{}),
		unknownKeyLimiter: rate.NewLimiter(0, 0), // refuses every unknown-kid refresh
		kick:              make(chan struct{}, 1),
	}
	close(s.done)
	close(s.firstAttempt)
	s.current.Store(snap)
	return s
}

// jwksServer is a JWKS endpoint on 127.0.0.1 whose answer the test changes, counting
// requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	status   int
	body     []byte
	encoding string        // Content-Encoding of body, if any
	delay    chan struct{} // when non-nil, requests wait for it to close (or their end)
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	js := &jwksServer{status: http.StatusOK, body: body}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.requests.Add(1)
		js.mu.Lock()
		status, body, delay, encoding := js.status, js.body, js.delay, js.encoding
		js.mu.Unlock()
		if delay != nil {
			select {
			case <-delay:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if encoding != "" {
			w.Header().Set("Content-Encoding", encoding)
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) serve(status int, body []byte) {
	js.mu.Lock()
	js.status, js.body = status, body
	js.mu.Unlock()
}

// hold makes requests wait until the returned function is called.
func (js *jwksServer) hold() (release func()) {
	ch := make(chan struct{})
	js.mu.Lock()
	js.delay = ch
	js.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			js.mu.Lock()
			js.delay = nil
			js.mu.Unlock()
			close(ch)
		})
	}
}

// newKeySets is a registry closed when the test ends.
func newKeySets(t testing.TB) *KeySets {
	t.Helper()
	k := NewKeySets(context.Background(), nil, nil)
	t.Cleanup(k.Close)
	return k
}

// waitLoaded waits (bounded) for the set's first fetch to end.
func waitLoaded(t testing.TB, s *KeySet) {
	t.Helper()
	select {
	case <-s.firstAttempt:
	case <-time.After(10 * time.Second):
		t.Fatal("first JWKS fetch did not end")
	}
}

// bearer is a request to the gateway carrying token as a bearer token.
func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
