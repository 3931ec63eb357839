package config

import "time"

// This file holds the `auth:` filter block (issue 18). Filters embeds Auth, so `defaults:`
// can set it for every route and a route's `auth: { enabled: false }` turns it off.
//
// Mechanisms run in a fixed order, cheap local checks first and the network call last:
// api_key, basic, jwt, forward. The first that admits the request ends the check; a
// mechanism whose credential is absent is skipped. When none admits, the answer is 403 if a
// mechanism proved an identity that this route does not allow, else 503 if one could not
// decide (JWKS never loaded, forward auth down), else 401 with a WWW-Authenticate challenge
// per mechanism. Forward auth's own non-2xx answer is relayed to the client as it came.

// Auth is a route's authentication: any configured mechanism that succeeds admits.
type Auth struct {
	Enabled *bool        `yaml:"enabled"`
	APIKey  *APIKeyAuth  `yaml:"api_key"`
	Basic   *BasicAuth   `yaml:"basic"`
	JWT     *JWTAuth     `yaml:"jwt"`
	Forward *ForwardAuth `yaml:"forward"`
}

// APIKeyAuth admits requests that carry a key listed (as its SHA-256) in a keys file.
type APIKeyAuth struct {
	Header     string   `yaml:"header"`      // request header holding the key; default X-Api-Key
	KeysFile   string   `yaml:"keys_file"`   // required; relative to the config file's directory
	Allow      []string `yaml:"allow"`       // key names admitted on this route; empty: every key in the file (a listed name that is not there is an error)
	NameHeader string   `yaml:"name_header"` // upstream request header set to the key's name; default none
	Strip      bool     `yaml:"strip"`       // remove the key header from the forwarded request; default false

	// Keys is the keys file, read and checked by the loader. Every block naming the same
	// file in one config shares this slice: read it, never change it. It has no JSON form,
	// so a block's JSON is its settings (the file's content is AuthFile.Digest).
	Keys []APIKey `yaml:"-" json:"-"`
	// KeysDigest is the SHA-256 of the keys file as loaded: in the block's JSON, so the
	// gateway keeps a route's filter across a reload only when the file did not change.
	KeysDigest []byte `yaml:"-"`
}

// APIKey is one entry of a keys file:
//
//	keys:
//	  - name: billing
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
type APIKey struct {
	Name   string   // unique in the file; what logs, metrics and name_header carry
	SHA256 [32]byte // of the key's bytes as the client sends them
}

// BasicAuth admits requests whose Basic credentials match a bcrypt htpasswd entry.
type BasicAuth struct {
	UsersFile  string        `yaml:"users_file"`  // required; htpasswd with bcrypt ($2a$, $2b$, $2y$) entries only
	Realm      string        `yaml:"realm"`       // WWW-Authenticate realm; default "switchyard"
	Allow      []string      `yaml:"allow"`       // user names admitted on this route; empty: every user in the file
	UserHeader string        `yaml:"user_header"` // upstream request header set to the user name; default none
	Strip      bool          `yaml:"strip"`       // remove Authorization from the forwarded request; default false
	CacheTTL   time.Duration `yaml:"cache_ttl"`   // how long a successful check is remembered; default 5m, 0 after defaults is impossible

	// Users maps a user name to its bcrypt hash, read and checked by the loader. Every
	// block naming the same file in one config shares this map (and the basic mechanisms
	// built from them keep it): read it, never change it. It has no JSON form, so a
	// block's JSON is its settings (the file's content is AuthFile.Digest).
	Users map[string][]byte `yaml:"-" json:"-"`
	// UsersDigest is the SHA-256 of the users file as loaded (see APIKeyAuth.KeysDigest).
	UsersDigest []byte `yaml:"-"`
}

// JWTAuth admits requests carrying a JWT signed by a key of a JWKS, with valid claims.
type JWTAuth struct {
	JWKSURL         string            `yaml:"jwks_url"`          // required; http or https
	Issuer          string            `yaml:"issuer"`            // required `iss` when set
	Audiences       []string          `yaml:"audiences"`         // required; `aud` must hold one of them
	Algorithms      []string          `yaml:"algorithms"`        // allow-list; default [RS256, ES256, EdDSA]; HS* and none refused
	Leeway          time.Duration     `yaml:"leeway"`            // clock skew allowed on exp/nbf/iat; default 30s
	From            string            `yaml:"from"`              // header:NAME (Bearer scheme for Authorization) | query:NAME | cookie:NAME; default header:Authorization
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers"` // claim -> upstream request header
	RequiredClaims  map[string]string `yaml:"required_claims"`   // claim must equal (or, for an array or space-separated scope, contain) the value; else 403
	Strip           bool              `yaml:"strip"`             // remove the token from the forwarded request; default false
	RefreshInterval time.Duration     `yaml:"refresh_interval"`  // background JWKS refresh; default 10m
	Timeout         time.Duration     `yaml:"timeout"`           // bound on one JWKS fetch; default 5s
}

// ForwardAuth asks an HTTP service whether to admit each request.
type ForwardAuth struct {
	URL             string        `yaml:"url"`              // required; http or https
	Timeout         time.Duration `yaml:"timeout"`          // bound on the subrequest; default 2s
	RequestHeaders  []string      `yaml:"request_headers"`  // client headers sent to the auth service; default [Authorization, Cookie]
	ResponseHeaders []string      `yaml:"response_headers"` // auth service headers copied upstream on 2xx; default none
	IdentityHeader  string        `yaml:"identity_header"`  // which of response_headers names the identity (rate_limit key: identity); default none
}

// Auth mechanism names, as metrics, logs and identities (mechanism:name) use them.
const (
	AuthAPIKey  = "api_key"
	AuthBasic   = "basic"
	AuthJWT     = "jwt"
	AuthForward = "forward"
)

// RateLimitKeyIdentity keys a rate limit on the identity auth admitted (api_key:NAME,
// basic:USER, jwt:SUB, forward:VALUE); requests without one share a bucket.
const RateLimitKeyIdentity = "identity"

// AuthFile is a file the config read besides itself (keys and users files), so a change to
// it reloads the config.
type AuthFile struct {
	Path   string // absolute
	Digest []byte // SHA-256 of the bytes that were loaded
}
