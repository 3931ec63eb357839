package jwt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	jwtv5 "github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// maxTokenBytes bounds a token: longer ones are refused before any decoding.
const maxTokenBytes = 8 << 10

// maxSubjectBytes bounds the sub claim, which becomes the identity in logs and rate limit
// keys.
const maxSubjectBytes = 256

const (
	challenge        = `Bearer realm="switchyard"`
	invalidChallenge = `Bearer realm="switchyard", error="invalid_token"`
)

// Decision reasons specific to tokens; see auth.Decision.Reason.
const (
	reasonMissing       = "missing"
	reasonInvalid       = "invalid"
	reasonExpired       = "expired"
	reasonUnknownKey    = "unknown_key"
	reasonWrongAudience = "wrong_audience"
	reasonWrongIssuer   = "wrong_issuer"
	reasonForbidden     = "forbidden"
	reasonUnavailable   = "unavailable"
	reasonOK            = "ok"
)

// Mechanism authenticates requests by JWT; it implements auth.Mechanism.
type Mechanism struct {
	set             *KeySet
	parser          *jwtv5.Parser
	source          tokenSource
	issuer          string
	audiences       []string
	required        []requiredClaim
	claimHeaders    []claimHeader
	identityHeaders []string
	strip           bool
	verified        *verifiedTokens
}

var _ auth.Mechanism = (*Mechanism)(nil)

// New builds the mechanism for one jwt block, verifying tokens with set's keys (from
// KeySets.Get(cfg)). It expects the loader's defaults applied (algorithms, leeway, from)
// and refuses algorithms that are not asymmetric signatures.
func New(cfg *config.JWTAuth, set *KeySet) (*Mechanism, error) {
	if cfg == nil || set == nil {
		return nil, errors.New("jwt: config and key set are required")
	}
	if len(cfg.Algorithms) == 0 {
		return nil, errors.New("jwt: no algorithms allowed")
	}
	for _, alg := range cfg.Algorithms {
		if !allowedAlgorithm(alg) {
			return nil, fmt.Errorf("jwt: algorithm %q is not allowed (RS*, PS*, ES*, EdDSA only)", alg)
		}
	}
	if u, err := url.Parse(cfg.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("jwt: jwks_url %q: want an http or https URL", cfg.JWKSURL)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("jwt: negative leeway %s", cfg.Leeway)
	}
	source, err := parseTokenSource(cfg.From)
	if err != nil {
		return nil, err
	}
	m := &Mechanism{
		set:       set,
		source:    source,
		issuer:    cfg.Issuer,
		audiences: slices.Clone(cfg.Audiences),
		strip:     cfg.Strip,
		verified:  newVerifiedTokens(cfg.Leeway),
	}
	options := []jwtv5.ParserOption{
		jwtv5.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwtv5.WithLeeway(cfg.Leeway),
		jwtv5.WithExpirationRequired(),
		jwtv5.WithIssuedAt(),
		jwtv5.WithJSONNumber(), // numeric claims reach headers as sent, not as float64
	}
	if cfg.Issuer != "" {
		options = append(options, jwtv5.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audiences) > 0 {
		// v5.3.1's WithAudience admits a token whose aud holds any one of them.
		options = append(options, jwtv5.WithAudience(m.audiences...))
	}
	m.parser = jwtv5.NewParser(options...)
	for _, claim := range slices.Sorted(maps.Keys(cfg.RequiredClaims)) {
		if claim == "" || cfg.RequiredClaims[claim] == "" {
			return nil, fmt.Errorf("jwt: required_claims %q: %q: want a claim name and a value", claim, cfg.RequiredClaims[claim])
		}
		m.required = append(m.required, requiredClaim{claim: claim, value: cfg.RequiredClaims[claim]})
	}
	for _, claim := range slices.Sorted(maps.Keys(cfg.ClaimsToHeaders)) {
		header := cfg.ClaimsToHeaders[claim]
		if claim == "" {
			return nil, errors.New("jwt: claims_to_headers: empty claim name")
		}
		// One rule for every header a mechanism writes upstream: auth's.
		if err := auth.CheckIdentityHeader(header); err != nil {
			return nil, fmt.Errorf("jwt: claims_to_headers %s: %w", claim, err)
		}
		header = http.CanonicalHeaderKey(header)
		if (source.kind == fromBearer || source.kind == fromHeader) && header == source.name {
			return nil, fmt.Errorf("jwt: claims_to_headers %s: %s is the token's own header and cannot be set from a claim", claim, header)
		}
		m.claimHeaders = append(m.claimHeaders, claimHeader{claim: claim, header: header})
		if !slices.Contains(m.identityHeaders, header) {
			m.identityHeaders = append(m.identityHeaders, header)
		}
	}
	return m, nil
}

// allowedAlgorithm reports whether alg is an asymmetric signature algorithm golang-jwt
// knows: none and HMAC (which a public key would "verify" if used as the secret) are not.
func allowedAlgorithm(alg string) bool {
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"), strings.HasPrefix(alg, "ES"), alg == "EdDSA":
		return jwtv5.GetSigningMethod(alg) != nil
	}
	return false
}

// Name is config.AuthJWT.
func (m *Mechanism) Name() string { return config.AuthJWT }

// KeySet is the key set the mechanism verifies with (the gateway passes the sets of the
// table it serves to KeySets.Prune).
func (m *Mechanism) KeySet() *KeySet { return m.set }

// IdentityHeaders are the claims_to_headers header names.
func (m *Mechanism) IdentityHeaders() []string { return m.identityHeaders }

// Challenge is `Bearer realm="switchyard"`, with error="invalid_token" when a token was
// presented and refused (RFC 6750 section 3).
func (m *Mechanism) Challenge(d auth.Decision) string {
	if d.Result == auth.Invalid {
		return invalidChallenge
	}
	return challenge
}

// Authenticate verifies the request's token. It admits a valid token that holds the
// required claims, setting claims_to_headers and stripping the token if configured.
func (m *Mechanism) Authenticate(_ http.ResponseWriter, r *http.Request, _ *filter.Request) auth.Decision {
	token, carried := m.source.extract(r)
	if carried == carriedNone {
		return auth.Decision{Result: auth.Skipped, Reason: reasonMissing}
	}
	if carried == carriedSeveral || token == "" || len(token) > maxTokenBytes {
		return auth.Decision{Result: auth.Invalid, Reason: reasonInvalid}
	}
	snap := m.set.snapshot(r.Context())
	if snap == nil {
		return auth.Decision{Result: auth.Unavailable, Reason: reasonUnavailable}
	}
	tokenKey := sha256.Sum256([]byte(token))
	if v := m.verified.lookup(tokenKey, snap); v != nil {
		return m.admit(r, v.subject, v.headerValues)
	}
	claims := jwtv5.MapClaims{}
	_, err := m.parser.ParseWithClaims(token, claims, snap.keyfunc)
	if err != nil && errors.Is(err, jwkset.ErrKeyNotFound) && m.set.refreshForUnknownKey(r.Context()) {
		// The issuer may have rotated: one retry with the refreshed keys.
		if fresh := m.set.current.Load(); fresh != snap {
			snap = fresh
			claims = jwtv5.MapClaims{}
			_, err = m.parser.ParseWithClaims(token, claims, fresh.keyfunc)
		}
	}
	if err != nil {
		return auth.Decision{Result: auth.Invalid, Reason: m.reason(err, claims)}
	}
	subject, ok := subjectOf(claims)
	if !ok {
		return auth.Decision{Result: auth.Invalid, Reason: reasonInvalid}
	}
	for _, rc := range m.required {
		if !hasClaim(claims, rc.claim, rc.value) {
			return auth.Decision{Result: auth.Forbidden, Identity: subject, Reason: reasonForbidden}
		}
	}
	values := make([]headerValueOf, len(m.claimHeaders))
	for i, ch := range m.claimHeaders {
		values[i].value, values[i].ok = headerValue(claims[ch.claim])
	}
	m.verified.remember(tokenKey, snap, claims, subject, values) // snap: the keys that verified it
	return m.admit(r, subject, values)
}

// admit applies an admitted token's upstream edits: claims_to_headers and strip.
func (m *Mechanism) admit(r *http.Request, subject string, values []headerValueOf) auth.Decision {
	for i, ch := range m.claimHeaders {
		if values[i].ok {
			r.Header[ch.header] = []string{values[i].value}
		}
	}
	if m.strip {
		m.source.strip(r)
	}
	return auth.Decision{Result: auth.Admitted, Identity: subject, Reason: reasonOK}
}

// subjectOf returns the sub claim ("" when absent); ok is false when it is not a short
// string free of control bytes, as it names the identity in logs and rate limit keys.
func subjectOf(claims jwtv5.MapClaims) (string, bool) {
	v, present := claims["sub"]
	if !present {
		return "", true
	}
	s, isString := v.(string)
	return s, isString && len(s) <= maxSubjectBytes && cleanText(s)
}

// reason names why a token was refused, for metrics and debug logs only.
func (m *Mechanism) reason(err error, claims jwtv5.MapClaims) string {
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return reasonUnknownKey
	case !errors.Is(err, jwtv5.ErrTokenInvalidClaims):
		// Malformed, disallowed alg, JWK alg mismatch, bad signature: claims were not
		// checked (they are only after the signature verifies).
		return reasonInvalid
	case errors.Is(err, jwtv5.ErrTokenInvalidIssuer):
		return reasonWrongIssuer
	case errors.Is(err, jwtv5.ErrTokenInvalidAudience):
		return reasonWrongAudience
	case errors.Is(err, jwtv5.ErrTokenExpired):
		return reasonExpired
	case errors.Is(err, jwtv5.ErrTokenRequiredClaimMissing):
		// Which required claim: exp (invalid), or an empty iss or aud.
		if iss, _ := claims.GetIssuer(); m.issuer != "" && iss == "" {
			return reasonWrongIssuer
		}
		if aud, _ := claims.GetAudience(); len(m.audiences) > 0 && (len(aud) == 0 || len(aud) == 1 && aud[0] == "") {
			return reasonWrongAudience
		}
	}
	return reasonInvalid
}
