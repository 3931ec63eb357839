package gateway

import (
	"encoding/json"
	"fmt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
	"github.com/switchyard/switchyard/filter/auth/apikey"
	"github.com/switchyard/switchyard/filter/auth/basic"
	"github.com/switchyard/switchyard/filter/auth/forward"
	"github.com/switchyard/switchyard/filter/auth/jwt"
)

// authEntry is a route's compiled auth filter, kept across reloads while its block (keys and
// users files' content included) is unchanged: basic auth's cache of successful checks
// survives an unrelated edit, so a reload does not send every client back through bcrypt.
type authEntry struct {
	key    string // the block as JSON
	filter *auth.Filter
	sets   []*jwt.KeySet // the JWKS key sets it reads
}

// authFilter returns the route's auth entry: the previous table's when the block did not
// change, else one compiled now with the mechanisms in the order config/types_auth.go
// documents (api_key, basic, jwt, forward: local checks first, the network call last). It
// returns nil when the block is off.
func (g *Gateway) authFilter(name string, rc *config.Route) (*authEntry, error) {
	a := rc.Auth
	if a == nil || a.Enabled != nil && !*a.Enabled {
		return nil, nil
	}
	// The block's settings and the digests of the files it read (the loaded keys and users
	// themselves have no JSON form: 100,000 hashes per route per reload would be the cost).
	keyJSON, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if e := g.auths[name]; e != nil && e.key == string(keyJSON) {
		return e, nil
	}
	e := &authEntry{key: string(keyJSON)}
	var mechanisms []auth.Mechanism
	fail := func(err error) (*authEntry, error) {
		if f := auth.New(name, mechanisms, nil, nil); f != nil {
			f.Close() // what was built so far
		}
		return nil, err
	}
	if a.APIKey != nil {
		m, err := apikey.New(a.APIKey)
		if err != nil {
			return fail(fmt.Errorf("auth.api_key: %w", err))
		}
		mechanisms = append(mechanisms, m)
	}
	if a.Basic != nil {
		m, err := basic.New(a.Basic)
		if err != nil {
			return fail(fmt.Errorf("auth.basic: %w", err))
		}
		mechanisms = append(mechanisms, m)
	}
	if a.JWT != nil {
		set := g.keySets.Get(a.JWT)
		m, err := jwt.New(a.JWT, set)
		if err != nil {
			return fail(fmt.Errorf("auth.jwt: %w", err))
		}
		mechanisms = append(mechanisms, m)
		e.sets = append(e.sets, set)
	}
	if a.Forward != nil {
		m, err := forward.New(a.Forward)
		if err != nil {
			return fail(fmt.Errorf("auth.forward: %w", err))
		}
		m.SetLogger(g.log) // why a call failed closed, at debug
		mechanisms = append(mechanisms, m)
	}
	e.filter = auth.New(name, mechanisms, g.metrics.auth, g.log)
	return e, nil
}

// closeAuths closes the entries of from that are not in keep (by pointer): after a swap the
// old table's entries no reload reused, after a failed Apply the ones it built. Entries
// outlive tables, so the gateway closes them rather than the routes (filter.Chain.Close
// leaves an auth filter alone: its Close is not io.Closer's).
func closeAuths(from, keep map[string]*authEntry) {
	for name, e := range from {
		if keep[name] != e {
			e.filter.Close()
		}
	}
}
