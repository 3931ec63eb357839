// Package apikey is the api_key auth mechanism: a request is admitted when one header
// carries a key whose SHA-256 is listed, by name, in the route's keys file.
//
// Only hashes are held, so a leaked config or memory dump yields no usable key. The presented
// key is hashed first and the hash is what is looked up: the time the lookup takes then
// depends on the SHA-256 of the guess, which says nothing about how many leading bytes of
// the guess match a real key (a byte-by-byte comparison of keys would leak exactly that).
// The map's key comparison is followed by crypto/subtle.ConstantTimeCompare of the full
// hash, so no comparison of a client's bytes with a stored value ever stops early.
//
// Decisions: no header or an empty one: Skipped ("missing"); more than one: Invalid (which
// to trust would be a guess); an unknown key: Invalid ("invalid"); a known key whose name
// is not in allow: Forbidden ("forbidden"); otherwise Admitted ("ok") with the key's name
// as identity. On admit the key's name is set in name_header, and the key header is
// removed when strip is set.
//
// A 401 carries `WWW-Authenticate: APIKey header="X-Api-Key"`. No registered HTTP
// authentication scheme covers API keys, so this one is non-standard, as are the similar
// challenges other gateways (Kong's key-auth among them) send: it tells a client which
// header to fill in.
package apikey

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"unsafe"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

// Mechanism checks API keys against one keys file. It is safe for concurrent use.
//
// It holds the loaded keys slice itself, not a copy, and looks keys up through an index
// shared by every mechanism over that slice (see keyIndex): what each route builds is only
// its allow set. The slice is read, never changed.
type Mechanism struct {
	header     string // canonical
	nameHeader string // canonical; "" for none
	strip      bool
	keys       []config.APIKey // shared, read-only
	index      *keyIndex       // shared, read-only
	allow      map[string]bool // nil: every key of the file
	challenge  string
}

// emptyKeyHash is the SHA-256 of no bytes.
var emptyKeyHash = sha256.Sum256(nil)

// New builds the mechanism from a loaded api_key block (cfg.Keys filled, defaults
// applied). An allow list naming a key that is not in the file is an error, as are two
// entries with the same name or the same hash.
func New(cfg *config.APIKeyAuth) (*Mechanism, error) {
	if cfg == nil {
		return nil, errors.New("api_key: no configuration")
	}
	m := &Mechanism{
		header:     textproto.CanonicalMIMEHeaderKey(cfg.Header),
		nameHeader: textproto.CanonicalMIMEHeaderKey(cfg.NameHeader),
		strip:      cfg.Strip,
		keys:       cfg.Keys,
	}
	if !auth.ValidHeaderName(cfg.Header) {
		return nil, fmt.Errorf("api_key: header %q is not a valid header name", cfg.Header)
	}
	var errs []error
	if cfg.NameHeader != "" {
		if err := auth.CheckIdentityHeader(cfg.NameHeader); err != nil {
			errs = append(errs, fmt.Errorf("api_key: name_header %w", err))
		}
	}
	if m.nameHeader == m.header {
		errs = append(errs, fmt.Errorf("api_key: name_header %q is the key header", cfg.NameHeader))
	}
	m.index = indexFor(cfg.Keys)
	errs = append(errs, m.index.errs...)
	if len(cfg.Allow) > 0 {
		m.allow = make(map[string]bool, len(cfg.Allow))
	}
	for _, name := range cfg.Allow {
		m.allow[name] = true
		if _, ok := m.index.byName[name]; !ok {
			errs = append(errs, fmt.Errorf("api_key: allow names %q, which is not in the keys file", name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Not a registered scheme: see the package doc.
	m.challenge = "APIKey header=" + auth.Quote(m.header)
	return m, nil
}

// Name returns config.AuthAPIKey.
func (m *Mechanism) Name() string { return config.AuthAPIKey }

// Authenticate looks the presented key up by its SHA-256.
func (m *Mechanism) Authenticate(_ http.ResponseWriter, r *http.Request, _ *filter.Request) auth.Decision {
	values := r.Header[m.header]
	switch {
	case len(values) == 0 || len(values) == 1 && values[0] == "":
		return auth.Decision{Result: auth.Skipped, Reason: "missing"}
	case len(values) > 1:
		return auth.Decision{Result: auth.Invalid, Reason: "invalid"}
	}
	k := m.lookup(values[0])
	switch {
	case k == nil:
		return auth.Decision{Result: auth.Invalid, Reason: "invalid"}
	case m.allow != nil && !m.allow[k.Name]:
		return auth.Decision{Result: auth.Forbidden, Identity: k.Name, Reason: "forbidden"}
	}
	if m.nameHeader != "" {
		r.Header[m.nameHeader] = []string{k.Name}
	}
	if m.strip {
		delete(r.Header, m.header)
	}
	return auth.Decision{Result: auth.Admitted, Identity: k.Name, Reason: "ok"}
}

// lookup returns the entry whose hash is SHA-256(presented), or nil.
func (m *Mechanism) lookup(presented string) *config.APIKey {
	// Hash the header's bytes in place: Sum256 only reads them, and copying a key longer
	// than the compiler's 32-byte stack buffer would allocate on every request.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(presented), len(presented)))
	i, ok := m.index.byHash[sum]
	if !ok {
		return nil
	}
	k := &m.keys[i]
	if subtle.ConstantTimeCompare(k.SHA256[:], sum[:]) != 1 {
		return nil
	}
	return k
}

// Challenge returns `APIKey header="<header>"` whatever the decision: a client without a
// key learns where one goes, and one with a wrong key learns nothing more.
func (m *Mechanism) Challenge(auth.Decision) string { return m.challenge }

// IdentityHeaders returns name_header when it is set.
func (m *Mechanism) IdentityHeaders() []string {
	if m.nameHeader == "" {
		return nil
	}
	return []string{m.nameHeader}
}
