// Package jwt is the JWT auth mechanism (config `auth: jwt:`), built on
// github.com/golang-jwt/jwt/v5 for parsing and validation and github.com/MicahParks/jwkset
// with keyfunc/v3 for turning JWKS entries into verification keys.
//
// # Tokens
//
// The token comes from `from`: header:Authorization takes "Bearer <token>" (scheme in any
// case; another scheme such as Basic is left to other mechanisms: Skipped), any other
// header:NAME takes the raw value, query:NAME a query parameter, cookie:NAME a cookie. No
// token: Skipped. A request carrying more than one copy (two lines of the header, whatever
// their scheme for Authorization, as basic auth also refuses two; two query parameters or
// two cookies of the name) is refused, Invalid: the upstream, which gets every copy, might
// read another than the one verified. A token over 8 KiB is refused before decoding. A
// token is admitted when:
//
//   - its alg is in `algorithms` (asymmetric only: none and HS* are refused by New, so
//     an HMAC token "signed" with a public key never verifies);
//   - its kid names a key of the JWKS whose own alg, if published, is the token's, and whose
//     type and curve fit it (ES256 only with P-256...); a token without kid is tried
//     against the keys that fit its alg; keys a token names itself (jku, jwk, x5u, x5c)
//     are never used, and a token with critical header extensions (crit) is refused;
//   - the signature verifies; exp is present and not passed, nbf and iat are not in the
//     future, each with `leeway`;
//   - iss equals `issuer` when configured, and aud holds one of `audiences` (config
//     validation requires audiences; New, for blocks built in code, skips the aud check
//     when there are none);
//   - sub, if present, is a string of at most 256 bytes without control bytes;
//   - every `required_claims` entry holds: the claim equals the value, or is an array
//     holding it, or a space-separated string (an OAuth scope) listing it. Else Forbidden,
//     with the sub as identity.
//
// On admission the identity is the sub; each `claims_to_headers` claim present is set
// upstream (strings as they are, numbers as sent, booleans, arrays of those joined by ",";
// objects, nulls, values with control bytes and arrays with an element holding "," (which
// would read as two values once joined) are not set; New refuses, by
// auth.CheckIdentityHeader, a claim mapped to a header that frames the message or the
// connection, and one mapped to the token's own header). With `strip` the token is removed
// (the header, the query parameter, or only that cookie). A refused request is not
// changed. Reasons for metrics and debug logs: missing, invalid, expired, unknown_key,
// wrong_audience, wrong_issuer, forbidden, unavailable, ok. The 401 challenge is
// `Bearer realm="switchyard"`, with `, error="invalid_token"` when a token was refused.
//
// An admitted token is remembered by its SHA-256 (cache.go) until its exp plus `leeway` or
// until the key set changes: the same token again costs a hash and a lookup, not a
// signature check. Refused tokens are never remembered.
//
// # Keys
//
// KeySets keeps one KeySet per (jwks_url, refresh_interval, timeout), shared by every route
// and kept across reloads until Prune drops it, so a reload does not refetch. A KeySet
// fetches in its own goroutine: at once (Get never waits), then every refresh_interval,
// after a failure sooner (1 s doubling up to the interval), and when a token names an
// unknown kid, at most once per 10 s per set (other tokens with unknown kids meanwhile
// join the refresh in flight or are refused at once: a storm of random kids costs the JWKS
// server one fetch per 10 s). A fetch is bounded by `timeout` and 1 MiB and follows at most
// 3 redirects, never one from https to http; an answer that is not 200, not a JWKS, or has
// no usable signature key (RSA of 2048 to 8192 bits, EC, Ed25519; encryption and symmetric
// keys are skipped; at most 64) keeps the last good keys.
// Until a first fetch succeeds tokens get Unavailable (503, fail closed); a request arriving
// during the first fetch waits for it, within its own context.
//
// Metrics: switchyard_auth_jwks_refreshes_total{result="ok"|"failed"} and
// switchyard_auth_jwks_keys{url} (the URL without user info, query or fragment).
//
// Why not keyfunc's own HTTP refresh: jwkset v0.11.4's HTTP storage fetches synchronously
// in its constructor, reads the body without a size bound, starts a goroutine that cannot
// be waited for, lets a `{}` answer wipe the keys, and on an unknown kid holds the request
// in rate.Limiter.Wait for up to a minute. keyfunc is used for what it does well: the
// jwt.Keyfunc over a fetched set (kid lookup, JWK alg check, public key).
package jwt
