package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	jwtv5 "github.com/golang-jwt/jwt/v5"
)

const (
	// maxJWKSBytes bounds a JWKS response: real sets are a few KiB.
	maxJWKSBytes = 1 << 20
	// maxKeys bounds the keys of one set: a token without a kid is tried against every key
	// of its algorithm, so the count is a cost multiplier.
	maxKeys = 64
	// minRSABits refuses weak RSA keys a JWKS might publish (NIST's floor since 2015);
	// maxRSABits refuses moduli so large that each verification becomes a CPU sink.
	minRSABits = 2048
	maxRSABits = 8192
)

// fetchKeys GETs a JWKS and turns its usable signature keys into a snapshot. Keys it cannot
// use (encryption keys, symmetric or unsupported types, malformed entries) are skipped; a
// set with no usable key is an error, so a broken answer never replaces good keys.
func fetchKeys(ctx context.Context, client *http.Client, jwksURL string, timeout time.Duration) (*keySnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// The client's error names the URL, whose query may hold a credential: logs get
		// the redacted form.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			urlErr.URL = redactURL(urlErr.URL)
		}
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: reading body: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks fetch: body larger than %d bytes", maxJWKSBytes)
	}
	return parseKeys(body)
}

// parseKeys builds a snapshot from a JWKS document.
func parseKeys(body []byte) (*keySnapshot, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON key set: %w", err)
	}
	store := jwkset.NewMemoryStorage()
	n, skipped := 0, 0
	var firstSkip error
	for _, m := range set.Keys {
		jwk, err := signatureKey(m)
		if err != nil {
			skipped++
			firstSkip = cmpOr(firstSkip, err)
			continue
		}
		if n == maxKeys {
			return nil, fmt.Errorf("jwks: more than %d usable keys", maxKeys)
		}
		_ = store.KeyWrite(context.Background(), jwk) // memory storage: never fails
		n++
	}
	if n == 0 {
		if firstSkip != nil {
			return nil, fmt.Errorf("jwks: no usable signature key (%d skipped; first: %w)", skipped, firstSkip)
		}
		return nil, errors.New("jwks: no keys")
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return &keySnapshot{keyfunc: matchingKey(kf.KeyfuncCtx(context.Background())), keys: n}, nil
}

var (
	// errKeyMismatch refuses a key whose type or curve does not fit the token's alg.
	errKeyMismatch = errors.New("jwks key does not fit the token's alg")
	// errCritical refuses a token naming critical header extensions: none is understood
	// here, and RFC 7515 section 4.1.11 says such a token must then be rejected.
	errCritical = errors.New("token has critical header extensions")
)

// matchingKey wraps a keyfunc so that only a key fitting the token's alg comes out: an
// ES256 token is checked with a P-256 key only, RS*/PS* with RSA, EdDSA with Ed25519.
// golang-jwt checks the key's Go type but not the curve, and a JWK without alg fits any.
// Keys named by the token itself (jku, jwk, x5u, x5c headers) are never used.
func matchingKey(next jwtv5.Keyfunc) jwtv5.Keyfunc {
	return func(token *jwtv5.Token) (any, error) {
		if _, ok := token.Header["crit"]; ok {
			return nil, errCritical
		}
		key, err := next(token)
		if err != nil {
			return nil, err
		}
		alg := token.Method.Alg()
		if set, ok := key.(jwtv5.VerificationKeySet); ok {
			var fit jwtv5.VerificationKeySet
			for _, k := range set.Keys {
				if keyFits(alg, k) {
					fit.Keys = append(fit.Keys, k)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, errKeyMismatch
			}
			return fit, nil
		}
		if !keyFits(alg, key) {
			return nil, errKeyMismatch
		}
		return key, nil
	}
}

// keyFits reports whether key can verify alg.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// signatureKey turns one JWKS entry into a public signature key, or says why it cannot be
// used.
func signatureKey(m jwkset.JWKMarshal) (jwkset.JWK, error) {
	if m.USE != "" && m.USE != jwkset.UseSig {
		return jwkset.JWK{}, fmt.Errorf("key %q: use %q is not sig", m.KID, m.USE)
	}
	switch m.KTY {
	case jwkset.KtyRSA, jwkset.KtyEC:
	case jwkset.KtyOKP:
		if m.CRV != jwkset.CrvEd25519 {
			return jwkset.JWK{}, fmt.Errorf("key %q: OKP curve %q is not Ed25519", m.KID, m.CRV)
		}
	default:
		// Symmetric (oct) keys never verify here: HMAC algorithms are not allowed, and a
		// published secret would be no secret.
		return jwkset.JWK{}, fmt.Errorf("key %q: key type %q is not RSA, EC or OKP", m.KID, m.KTY)
	}
	// Private material, if a careless JWKS carries it, is ignored: Private is false.
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return jwkset.JWK{}, fmt.Errorf("key %q: %w", m.KID, err)
	}
	if key, ok := jwk.Key().(*rsa.PublicKey); ok && (key.N.BitLen() < minRSABits || key.N.BitLen() > maxRSABits) {
		return jwkset.JWK{}, fmt.Errorf("key %q: RSA key of %d bits, want %d to %d", m.KID, key.N.BitLen(), minRSABits, maxRSABits)
	}
	return jwk, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
