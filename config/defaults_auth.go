package config

import (
	"reflect"
	"time"
)

// Built-in values of the auth mechanisms (README.md, Authentication, lists the same).
var (
	builtinAPIKey = APIKeyAuth{Header: "X-Api-Key"}
	// A successful bcrypt check is remembered for cache_ttl: bcrypt costs tens of
	// milliseconds on purpose, so without a cache every request of a logged-in client pays
	// it, and a flood of requests with valid credentials is a CPU attack.
	builtinBasic = BasicAuth{Realm: "switchyard", CacheTTL: 5 * time.Minute}
	// Asymmetric algorithms only: a JWKS carries public keys, so an HMAC algorithm would
	// take a public key as its secret (the algorithm-confusion attack).
	builtinJWT = JWTAuth{
		Algorithms:      []string{"RS256", "ES256", "EdDSA"},
		Leeway:          30 * time.Second,
		From:            "header:Authorization",
		RefreshInterval: 10 * time.Minute,
		Timeout:         5 * time.Second,
	}
	builtinForward = ForwardAuth{Timeout: 2 * time.Second, RequestHeaders: []string{"Authorization", "Cookie"}}
)

// resolveAuth resolves a policy's auth block against its parent's (already resolved).
// Not written: a copy of the parent's (nil when the parent's is off). Written with
// `enabled: false`: nil. Otherwise the written block replaces the parent's as a whole: its
// mechanisms are the ones it writes, so a route that writes `auth: { api_key: ... }` does
// not also admit the defaults' JWTs. Each mechanism it writes takes the keys it leaves out
// from the same mechanism of template (the defaults' auth block as written), else from the
// built-ins. A block that writes no mechanism (`auth: {}`, `auth: { enabled: true }`) takes
// the template's mechanisms: it turns on what `defaults:` prepared.
func resolveAuth(own *Auth, path string, parent, template *Auth, set func(string) bool) *Auth {
	if own == nil {
		if parent == nil {
			return nil
		}
		out := cloneBlock(parent)
		out.Enabled = ptr(true)
		return out
	}
	if own.Enabled != nil && !*own.Enabled {
		return nil
	}
	if template == nil {
		template = &Auth{}
	}
	out := &Auth{Enabled: ptr(true)}
	if !hasMechanism(own) {
		t := cloneBlock(template)
		out.APIKey, out.Basic, out.JWT, out.Forward = t.APIKey, t.Basic, t.JWT, t.Forward
		return out
	}
	out.APIKey = fillMechanism(own.APIKey, path+".api_key", template.APIKey, &builtinAPIKey, set)
	out.Basic = fillMechanism(own.Basic, path+".basic", template.Basic, &builtinBasic, set)
	out.JWT = fillMechanism(own.JWT, path+".jwt", template.JWT, &builtinJWT, set)
	out.Forward = fillMechanism(own.Forward, path+".forward", template.Forward, &builtinForward, set)
	return out
}

// authTemplate is the auth block a policy writes, each mechanism it writes completed from
// the built-ins, whether or not the block is enabled; nil mechanisms are the ones it does
// not write. A nil own gives an empty template.
func authTemplate(own *Auth, path string, set func(string) bool) *Auth {
	if own == nil {
		return &Auth{}
	}
	return &Auth{
		Enabled: own.Enabled,
		APIKey:  fillMechanism(own.APIKey, path+".api_key", nil, &builtinAPIKey, set),
		Basic:   fillMechanism(own.Basic, path+".basic", nil, &builtinBasic, set),
		JWT:     fillMechanism(own.JWT, path+".jwt", nil, &builtinJWT, set),
		Forward: fillMechanism(own.Forward, path+".forward", nil, &builtinForward, set),
	}
}

// fillMechanism returns a copy of own with every key the file did not write at path taken
// from template, or from builtin when template is nil; nil when own is.
func fillMechanism[T any](own *T, path string, template, builtin *T, set func(string) bool) *T {
	if own == nil {
		return nil
	}
	if template == nil {
		template = builtin
	}
	return fillUnset(own, path, template, set)
}

// fillUnset returns a copy of own with every field the file did not write at path taken
// from base. Fields without a yaml key (the files the loader reads) are own's.
func fillUnset[T any](own *T, path string, base *T, set func(string) bool) *T {
	out := cloneBlock(own)
	ov := reflect.ValueOf(out).Elem()
	bv := reflect.ValueOf(cloneBlock(base)).Elem()
	fields, _ := fieldsOf(ov.Type())
	for name, idx := range fields {
		if !set(path + "." + name) {
			ov.FieldByIndex(idx).Set(bv.FieldByIndex(idx))
		}
	}
	return out
}

// hasMechanism reports whether a names at least one mechanism.
func hasMechanism(a *Auth) bool {
	return a.APIKey != nil || a.Basic != nil || a.JWT != nil || a.Forward != nil
}
