package config

import (
	"fmt"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// jwtAlgorithms are what jwt.algorithms may list: the asymmetric signature algorithms of
// RFC 7518 and RFC 8037, whose public keys a JWKS publishes.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Bounds of the auth keys whose useful range is narrow: past them a value is a unit typo.
const (
	maxJWTLeeway       = 5 * time.Minute  // clocks synced by NTP differ by far less; more keeps expired tokens alive
	minJWKSRefresh     = time.Minute      // the issuer's JWKS is fetched no more often than this
	maxForwardTimeout  = 60 * time.Second // every request of the route may wait this long
	maxAuthHeaderNames = 64               // request_headers, response_headers, claims_to_headers entries
)

// whyAudiences is why jwt.audiences is required (RFC 8725 section 3.9): an issuer mints
// tokens for many applications, all signed with the keys of the one JWKS.
const whyAudiences = "a token the same issuer minted for another application would otherwise be admitted"

// Token sources, as jwt.from takes them ("header:Authorization" reads a Bearer token).
const (
	tokenFromHeader = "header:"
	tokenFromQuery  = "query:"
	tokenFromCookie = "cookie:"
)

// forwardAuthHeaders are the request fields forward auth writes into its subrequest itself,
// so request_headers may not name them: a client's copy would pass for the gateway's.
var forwardAuthHeaders = []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host",
	"X-Forwarded-Proto", "X-Forwarded-For", "X-Request-Id"}

// auth checks what an auth block writes, canonicalizing header names in place. Keys that
// may be inherited (keys_file, jwks_url...) are required in resolvedAuth, once the block
// is resolved.
func (v *validator) auth(p string, a *Auth) {
	if k := a.APIKey; k != nil {
		kp := p + ".api_key"
		v.credentialHeader(kp+".header", &k.Header)
		v.check(kp+".keys_file", k.KeysFile != "", "must not be empty (the keys file's path)")
		v.allowList(kp+".allow", k.Allow)
		v.identityHeader(kp+".name_header", &k.NameHeader)
	}
	if b := a.Basic; b != nil {
		bp := p + ".basic"
		v.check(bp+".users_file", b.UsersFile != "", "must not be empty (the htpasswd file's path)")
		v.check(bp+".realm", validRealm(b.Realm), "invalid realm %q: want 1 to 128 printable characters without quotes or backslashes", b.Realm)
		v.allowList(bp+".allow", b.Allow)
		v.identityHeader(bp+".user_header", &b.UserHeader)
		v.check(bp+".cache_ttl", b.CacheTTL > 0, "must be positive (each check costs a bcrypt hash, tens of milliseconds of CPU)")
	}
	if j := a.JWT; j != nil {
		v.jwt(p+".jwt", j)
	}
	if f := a.Forward; f != nil {
		v.forward(p+".forward", f)
	}
}

// jwt checks what a jwt block writes, canonicalizing the header names of from and
// claims_to_headers.
func (v *validator) jwt(jp string, j *JWTAuth) {
	if v.set(jp + ".jwks_url") {
		if err := endpointURL(j.JWKSURL); err != nil {
			v.errorf(jp+".jwks_url", "%v", err)
		}
	}
	v.check(jp+".issuer", j.Issuer != "", "must not be empty (leave it out to accept any issuer)")
	v.check(jp+".audiences", len(j.Audiences) > 0, "must not be empty (list the aud values this route accepts; %s)", message(whyAudiences))
	for i, aud := range j.Audiences {
		ap := fmt.Sprintf("%s.audiences[%d]", jp, i)
		if aud == "" {
			v.check(ap, false, "empty audience")
		} else if k := slices.Index(j.Audiences[:i], aud); k >= 0 {
			v.check(ap, false, "duplicate of audiences[%d]", k)
		}
	}
	v.algorithms(jp+".algorithms", j.Algorithms)
	v.check(jp+".leeway", j.Leeway <= maxJWTLeeway, "must be at most %s (clock skew between NTP-synced hosts is far less; more keeps expired tokens valid), got %s", maxJWTLeeway, j.Leeway)
	if v.set(jp + ".from") {
		if norm, err := tokenSource(j.From); err != nil {
			v.errorf(jp+".from", "%v", err)
		} else {
			j.From = norm
		}
	}
	v.check(jp+".claims_to_headers", len(j.ClaimsToHeaders) <= maxAuthHeaderNames, "at most %d entries", maxAuthHeaderNames)
	written := map[string]string{} // canonical header -> claim first writing it
	for _, claim := range sortedKeys(j.ClaimsToHeaders) {
		cp := join(jp+".claims_to_headers", claim)
		if claim == "" {
			v.errorf(cp, "empty claim name")
			continue
		}
		h := j.ClaimsToHeaders[claim]
		if !v.identityHeaderAt(cp, &h) {
			continue
		}
		j.ClaimsToHeaders[claim] = h
		if first, dup := written[h]; dup {
			v.errorf(cp, "header %q is already written for claim %q (header names are case-insensitive)", h, first)
		} else {
			written[h] = claim
		}
	}
	for _, claim := range sortedKeys(j.RequiredClaims) {
		cp := join(jp+".required_claims", claim)
		switch {
		case claim == "":
			v.errorf(cp, "empty claim name")
		case j.RequiredClaims[claim] == "":
			v.errorf(cp, "empty value (write the value the claim must hold or contain)")
		}
	}
	v.check(jp+".refresh_interval", j.RefreshInterval >= minJWKSRefresh, "must be at least %s (an unknown kid also triggers a fetch), got %s", minJWKSRefresh, j.RefreshInterval)
	v.check(jp+".timeout", j.Timeout > 0, "must be positive")
}

// algorithms checks jwt.algorithms: asymmetric algorithms only, each once.
func (v *validator) algorithms(p string, algs []string) {
	v.check(p, len(algs) > 0, "must not be empty (leave it out for RS256, ES256, EdDSA)")
	for i, alg := range algs {
		ap := fmt.Sprintf("%s[%d]", p, i)
		if !v.set(ap) {
			continue
		}
		switch {
		case strings.EqualFold(alg, "none"):
			v.errorf(ap, "\"none\" is refused: an unsigned token proves nothing")
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			v.errorf(ap, "%q is refused: a JWKS carries public keys, and HMAC keyed with a public key lets anyone sign (the algorithm-confusion attack); want %s", alg, strings.Join(jwtAlgorithms, ", "))
		case slices.Contains(algs[:i], alg):
			v.errorf(ap, "duplicate algorithm %q", alg)
		case !slices.Contains(jwtAlgorithms, alg):
			if s := suggest(alg, jwtAlgorithms); s != "" {
				v.errorf(ap, "unknown algorithm %q (did you mean %q? want %s)", alg, s, strings.Join(jwtAlgorithms, ", "))
			} else {
				v.errorf(ap, "unknown algorithm %q (want %s)", alg, strings.Join(jwtAlgorithms, ", "))
			}
		}
	}
}

// forward checks what a forward block writes, canonicalizing its header names.
func (v *validator) forward(fp string, f *ForwardAuth) {
	if v.set(fp + ".url") {
		if err := endpointURL(f.URL); err != nil {
			v.errorf(fp+".url", "%v", err)
		}
	}
	v.check(fp+".timeout", f.Timeout > 0 && f.Timeout <= maxForwardTimeout,
		"must be positive and at most %s (every request of the route waits for the auth service), got %s", maxForwardTimeout, f.Timeout)
	v.check(fp+".request_headers", len(f.RequestHeaders) <= maxAuthHeaderNames, "at most %d entries", maxAuthHeaderNames)
	for i := range f.RequestHeaders {
		hp := fmt.Sprintf("%s.request_headers[%d]", fp, i)
		switch h := &f.RequestHeaders[i]; {
		case !v.headerName(hp, h):
		case *h == "Host":
			v.errorf(hp, "Host is not sent to the auth service (it gets X-Forwarded-Host)")
		case slices.Contains(managedHeaders, strings.ToLower(*h)):
			v.errorf(hp, "%q is a hop-by-hop or framing header: it is not forwarded", *h)
		case slices.Contains(forwardAuthHeaders, *h):
			v.errorf(hp, "%q is written by the gateway into every auth subrequest; a client's copy is never sent", *h)
		case slices.Contains(f.RequestHeaders[:i], *h):
			v.errorf(hp, "duplicate header %q (header names are case-insensitive)", *h)
		}
	}
	v.check(fp+".response_headers", len(f.ResponseHeaders) <= maxAuthHeaderNames, "at most %d entries", maxAuthHeaderNames)
	for i := range f.ResponseHeaders {
		hp := fmt.Sprintf("%s.response_headers[%d]", fp, i)
		if h := &f.ResponseHeaders[i]; v.identityHeaderAt(hp, h) && slices.Contains(f.ResponseHeaders[:i], *h) {
			v.errorf(hp, "duplicate header %q (header names are case-insensitive)", *h)
		}
	}
	if f.IdentityHeader != "" {
		v.headerName(fp+".identity_header", &f.IdentityHeader)
	}
}

// headerName checks a header name written at p and canonicalizes it; it reports whether
// the name is usable (false also when p was not written).
func (v *validator) headerName(p string, name *string) bool {
	if !v.set(p) {
		return false
	}
	if !httpguts.ValidHeaderFieldName(*name) {
		v.errorf(p, "invalid header name %q", *name)
		return false
	}
	*name = textproto.CanonicalMIMEHeaderKey(*name)
	return true
}

// credentialHeader checks a header a credential is read from.
func (v *validator) credentialHeader(p string, name *string) {
	if !v.headerName(p, name) {
		return
	}
	if lower := strings.ToLower(*name); slices.Contains(managedHeaders, lower) {
		v.errorf(p, "%q is a hop-by-hop, framing or Host header: it cannot carry a credential", *name)
	}
}

// identityHeader checks an optional header the gateway writes upstream ("" = none).
func (v *validator) identityHeader(p string, name *string) {
	if *name != "" {
		v.identityHeaderAt(p, name)
	}
}

// identityHeaderAt checks a header the gateway writes upstream with what auth admitted: it
// must be one a filter may write. It reports whether the name is usable.
func (v *validator) identityHeaderAt(p string, name *string) bool {
	if !v.headerName(p, name) {
		return false
	}
	if *name == "Host" {
		v.errorf(p, "Host cannot carry an identity (use rewrite.host to change the Host sent upstream)")
		return false
	}
	if why := managedHeader(*name, true); why != "" {
		v.errorf(p, "%s", message(why))
		return false
	}
	return true
}

// allowList checks an allow list of key or user names: each non-empty, once. Names absent
// from the file are found when the file is read.
func (v *validator) allowList(p string, names []string) {
	for i, n := range names {
		np := fmt.Sprintf("%s[%d]", p, i)
		if n == "" {
			v.check(np, false, "empty name")
		} else if k := slices.Index(names[:i], n); k >= 0 {
			v.check(np, false, "duplicate of %s[%d]", p[strings.LastIndexByte(p, '.')+1:], k)
		}
	}
}

// validRealm reports a realm that fits in WWW-Authenticate's quoted string as is.
func validRealm(s string) bool {
	if s == "" || len(s) > 128 || !httpguts.ValidHeaderFieldValue(s) {
		return false
	}
	return !strings.ContainsAny(s, "\"\\")
}

// tokenSource checks jwt.from and returns it with a header name canonicalized.
func tokenSource(s string) (string, error) {
	kind, name, _ := strings.Cut(s, ":")
	kind += ":"
	switch {
	case kind == tokenFromHeader && httpguts.ValidHeaderFieldName(name) && !slices.Contains(managedHeaders, strings.ToLower(name)):
		return kind + textproto.CanonicalMIMEHeaderKey(name), nil
	case kind == tokenFromCookie && isToken(name):
		return s, nil
	case kind == tokenFromQuery && isToken(name) && !strings.ContainsAny(name, "&#%+"): // as written, no escaping
		return s, nil
	}
	return "", fmt.Errorf("invalid token source %q: want header:NAME (Bearer token in Authorization), query:NAME or cookie:NAME", s)
}

// endpointURL checks the URL of a service auth calls (JWKS, forward auth): http or https,
// a host, a path and query if wanted, no credentials (they would show in logs and errors).
func endpointURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil && !strings.Contains(s, "://"), err == nil && u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL %q must start with http:// or https://", s)
	case err != nil && strings.Contains(s, "@"):
		return fmt.Errorf("invalid URL (not repeated here: it may hold a password)")
	case err != nil:
		return fmt.Errorf("invalid URL %q", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("URL %q has no host", s)
	case u.User != nil:
		return fmt.Errorf("URL must not hold a user or password (they would show in logs)")
	case u.Fragment != "":
		return fmt.Errorf("URL %q must not have a fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("URL %q has a bad port", s)
		}
	}
	return nil
}

// resolvedAuth checks what only a resolved auth block shows: a required key missing from
// the whole inheritance chain, and the rules across keys and mechanisms. Only blocks written
// at a policy are reported there, so one bad `defaults:` block gives one error, not one per
// route; a missing key is reported where the mechanism (or else the auth block) is written.
func (v *validator) resolvedAuth(c *Config) {
	check := func(p string, a *Auth) {
		ap := p + ".auth"
		if a == nil || !v.set(ap) {
			return
		}
		if !hasMechanism(a) {
			v.errorf(ap, "needs at least one mechanism: api_key, basic, jwt or forward (or enabled: false to turn auth off)")
			return
		}
		missing := func(mech, key string, isMissing bool, example string) {
			if isMissing && !v.set(ap+"."+mech+"."+key) {
				v.errorf(ap+"."+mech, "missing %s (%s)", key, message(example))
			}
		}
		if k := a.APIKey; k != nil {
			missing("api_key", "keys_file", k.KeysFile == "", "a YAML file of key names and SHA-256 hashes, e.g. keys_file: api-keys.yaml")
		}
		if b := a.Basic; b != nil {
			missing("basic", "users_file", b.UsersFile == "", "an htpasswd file of bcrypt entries, e.g. users_file: htpasswd")
		}
		if j := a.JWT; j != nil {
			missing("jwt", "jwks_url", j.JWKSURL == "", "the issuer's key set, e.g. jwks_url: https://issuer.example/.well-known/jwks.json")
			missing("jwt", "audiences", len(j.Audiences) == 0, "the aud values this route accepts, e.g. audiences: [users-api]; "+whyAudiences)
		}
		if f := a.Forward; f != nil {
			missing("forward", "url", f.URL == "", "the auth service, e.g. url: http://auth.internal/check")
			if h := f.IdentityHeader; h != "" && httpguts.ValidHeaderFieldName(h) && !slices.Contains(f.ResponseHeaders, h) {
				v.errorf(ap+".forward.identity_header", "%q must be one of response_headers (only those are taken from the auth service's answer)", h)
			}
		}
		v.credentialIdentityClash(ap, a)
	}
	check("defaults", c.Defaults.Auth)
	for i := range c.Routes {
		p, pol := routePath(i), &c.Routes[i].Policy
		check(p, pol.Auth)
		if rl := pol.RateLimit; rl != nil && rl.Key == RateLimitKeyIdentity && pol.Auth == nil {
			v.errorf(p+".rate_limit.key", "key identity needs auth on this route (the identity is what auth admitted), and auth is off here")
		}
	}
}

// credentialIdentityClash refuses an identity header (written upstream with what auth
// admitted) that is also a header a mechanism of the block reads credentials from: the
// upstream could not tell one from the other, and a client could send the "identity".
func (v *validator) credentialIdentityClash(ap string, a *Auth) {
	type source struct{ header, what string }
	var sources []source
	if k := a.APIKey; k != nil {
		sources = append(sources, source{k.Header, "api_key.header"})
	}
	if a.Basic != nil {
		sources = append(sources, source{"Authorization", "basic"})
	}
	if j := a.JWT; j != nil {
		if name, ok := strings.CutPrefix(j.From, tokenFromHeader); ok {
			sources = append(sources, source{name, "jwt.from"})
		}
	}
	if f := a.Forward; f != nil {
		for _, h := range f.RequestHeaders {
			sources = append(sources, source{h, "forward.request_headers"})
		}
	}
	clash := func(p, h string) {
		for _, s := range sources {
			if h != "" && strings.EqualFold(h, s.header) {
				v.errorf(p, "%q is a credential header on this route (%s reads it); an identity header must be another one", h, s.what)
				return
			}
		}
	}
	if k := a.APIKey; k != nil {
		clash(ap+".api_key.name_header", k.NameHeader)
	}
	if b := a.Basic; b != nil {
		clash(ap+".basic.user_header", b.UserHeader)
	}
	if j := a.JWT; j != nil {
		for _, claim := range sortedKeys(j.ClaimsToHeaders) {
			clash(join(ap+".jwt.claims_to_headers", claim), j.ClaimsToHeaders[claim])
		}
	}
	if f := a.Forward; f != nil {
		for i, h := range f.ResponseHeaders {
			clash(fmt.Sprintf("%s.forward.response_headers[%d]", ap, i), h)
		}
	}
}
