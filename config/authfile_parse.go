package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// maxAuthEntries bounds the keys of a keys file and the users of an htpasswd file: far
// more than a gateway's own list holds (beyond that an identity provider, through jwt or
// forward, is the tool), and a bound on the memory a wrong file costs.
const maxAuthEntries = 100000

// fileError is one problem in a keys or users file, at a line of that file (0: the file as
// a whole).
type fileError struct {
	Line int
	Msg  string
}

// fileErrors collects a file's errors, keeping the first maxErrors: a wrong file (a log, a
// binary) would otherwise give one per line.
type fileErrors struct {
	list []fileError
	more int
}

func (e *fileErrors) add(line int, format string, args ...any) {
	if len(e.list) >= maxErrors {
		e.more++
		return
	}
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > maxQuoted {
			args[i] = shorten(s)
		}
	}
	e.list = append(e.list, fileError{line, fmt.Sprintf(format, args...)})
}

func (e *fileErrors) result() []fileError {
	if e.more > 0 {
		return append(e.list, fileError{0, fmt.Sprintf("... and %d more errors in this file", e.more)})
	}
	return e.list
}

// parseKeysFile reads an API keys file:
//
//	keys:
//	  - name: billing
//	    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//
// Strictly: unknown keys, anchors and aliases, repeated names and repeated hashes are
// errors. Values are taken as written (no ${VAR}: the file holds data, not settings).
func parseKeysFile(data []byte) ([]APIKey, []fileError) {
	var errs fileErrors
	root, ok := keysDocument(data, &errs)
	if !ok {
		return nil, errs.result()
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode || k.Value != "keys":
			errs.add(k.Line, "unknown key %q (want keys: a list of {name, sha256})", k.Value)
		case list != nil:
			errs.add(k.Line, "duplicate key \"keys\" (first at line %d)", list.Line)
		default:
			list = val
		}
	}
	switch {
	case list == nil:
		errs.add(root.Line, "missing keys (want keys: a list of {name, sha256})")
	case list.Kind == yaml.AliasNode:
		errs.add(list.Line, "keys: aliases are not allowed in a keys file")
	case list.Kind != yaml.SequenceNode:
		errs.add(list.Line, "keys: expected a list, got %s", kindName(list))
	case len(list.Content) == 0:
		errs.add(list.Line, "keys: must not be empty (a keys file admits no one without keys)")
	case len(list.Content) > maxAuthEntries:
		errs.add(list.Line, "keys: more than %d keys", maxAuthEntries)
	default:
		keys := keyEntries(list.Content, &errs)
		if len(errs.list) == 0 {
			return keys, nil
		}
	}
	return nil, errs.result()
}

// keysDocument parses a keys file's one YAML document and returns its root mapping.
func keysDocument(data []byte, errs *fileErrors) (*yaml.Node, bool) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		e := syntaxError("", err)
		errs.add(e.Line, "%s", message(e.Msg))
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil && !emptyDocument(&extra) || err != nil && !errors.Is(err, io.EOF) {
		errs.add(extra.Line, "only one YAML document is allowed")
		return nil, false
	}
	if doc.Kind == 0 || emptyDocument(&doc) {
		errs.add(0, "empty file (want keys: a list of {name, sha256})")
		return nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		errs.add(root.Line, "expected a mapping with keys:, got %s", kindName(root))
		return nil, false
	}
	return root, true
}

// keyEntries checks the entries of a keys file's list.
func keyEntries(items []*yaml.Node, errs *fileErrors) []APIKey {
	keys := make([]APIKey, 0, len(items))
	nameAt := make(map[string]int, len(items)) // name -> index
	type entry struct {
		index int
		name  string
	}
	hashAt := make(map[[32]byte]entry, len(items))
	for i, item := range items {
		p := fmt.Sprintf("keys[%d]", i)
		if item.Kind == yaml.AliasNode {
			errs.add(item.Line, "%s: aliases are not allowed in a keys file", p)
			continue
		}
		if item.Kind != yaml.MappingNode {
			errs.add(item.Line, "%s: expected a mapping {name, sha256}, got %s", p, kindName(item))
			continue
		}
		var name, sum *yaml.Node
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, val := item.Content[j], item.Content[j+1]
			field := &name
			switch k.Value {
			case "name":
			case "sha256":
				field = &sum
			default:
				if s := suggest(k.Value, []string{"name", "sha256"}); s != "" {
					errs.add(k.Line, "%s: unknown key %q (did you mean %q?)", p, k.Value, s)
				} else {
					errs.add(k.Line, "%s: unknown key %q (want name, sha256)", p, k.Value)
				}
				continue
			}
			if *field != nil {
				errs.add(k.Line, "%s: duplicate key %q (first at line %d)", p, k.Value, (*field).Line)
				continue
			}
			*field = val
		}
		var key APIKey
		ok := true
		if s, good := keyScalar(name, p+".name", item.Line, errs); !good {
			ok = false
		} else if !validKeyName(s) {
			errs.add(name.Line, "%s.name: invalid name %q: want 1 to 128 printable ASCII characters, no spaces", p, s)
			ok = false
		} else if first, dup := nameAt[s]; dup {
			errs.add(name.Line, "%s.name: duplicate name %q (first at keys[%d])", p, s, first)
			ok = false
		} else {
			key.Name = s
			nameAt[s] = i
		}
		if s, good := keyScalar(sum, p+".sha256", item.Line, errs); !good {
			ok = false
		} else if b, err := hex.DecodeString(s); err != nil || len(b) != len(key.SHA256) {
			errs.add(sum.Line, "%s.sha256: not 64 hex digits", p)
			ok = false
		} else {
			copy(key.SHA256[:], b)
			if first, dup := hashAt[key.SHA256]; dup {
				errs.add(sum.Line, "%s.sha256: same hash as keys[%d] (%q): one key under two names", p, first.index, first.name)
				ok = false
			} else if ok {
				hashAt[key.SHA256] = entry{i, key.Name}
			}
		}
		if ok {
			keys = append(keys, key)
		}
	}
	return keys
}

// keyScalar returns a keys file entry's value, or false after reporting it missing or not
// a string.
func keyScalar(n *yaml.Node, p string, line int, errs *fileErrors) (string, bool) {
	switch {
	case n == nil || isNull(n):
		errs.add(line, "%s: missing", p)
	case n.Kind == yaml.AliasNode:
		errs.add(n.Line, "%s: aliases are not allowed in a keys file", p)
	case n.Kind != yaml.ScalarNode:
		errs.add(n.Line, "%s: expected a string, got %s", p, kindName(n))
	default:
		return n.Value, true
	}
	return "", false
}

// validKeyName reports a key name fit for logs, metrics and an upstream header: 1 to 128
// printable ASCII characters, no spaces.
func validKeyName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// parseHtpasswd reads an htpasswd file of bcrypt entries, `user:hash` per line; blank lines
// and lines starting with # are skipped. Any other hash format is an error, and so is a
// user listed twice. No message repeats what follows a user name: a line that is not an
// entry may be a password.
func parseHtpasswd(data []byte) (map[string][]byte, []fileError) {
	var errs fileErrors
	users := map[string][]byte{}
	userLine := map[string]int{}
	for n, rest := 1, data; len(rest) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if trimmed := bytes.TrimLeft(line, " \t"); len(trimmed) == 0 || trimmed[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(string(line), ":")
		if !ok {
			errs.add(n, "want user:bcrypt-hash (htpasswd -nbB USER PASSWORD makes one)")
			continue
		}
		if !validUserName(user) {
			errs.add(n, "invalid user name %q: want 1 to 255 characters, no control characters, no leading or trailing spaces", user)
			continue
		}
		if msg := checkBcrypt(hash); msg != "" {
			errs.add(n, "user %q: %s", user, message(msg))
			continue
		}
		if first, dup := userLine[user]; dup {
			errs.add(n, "duplicate user %q (first at line %d)", user, first)
			continue
		}
		if len(users) == maxAuthEntries {
			errs.add(n, "more than %d users", maxAuthEntries)
			break
		}
		users[user] = []byte(hash)
		userLine[user] = n
	}
	if len(users) == 0 && len(errs.list) == 0 {
		errs.add(0, "no users (want user:bcrypt-hash lines; htpasswd -nbB USER PASSWORD makes one)")
	}
	if len(errs.list) > 0 {
		return nil, errs.result()
	}
	return users, nil
}

// validUserName reports a user name as Basic credentials can carry it and logs can show
// it: valid UTF-8 of 1 to 255 bytes without control characters or outer spaces.
func validUserName(s string) bool {
	if s == "" || len(s) > 255 || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// htpasswdFormats names the hash formats htpasswd and crypt(3) write, for the error that
// refuses them.
var htpasswdFormats = []struct{ prefix, name string }{
	{"{SHA}", "{SHA} (SHA-1) hashes are"},
	{"$apr1$", "$apr1$ (Apache MD5) hashes are"},
	{"$1$", "$1$ (MD5-crypt) hashes are"},
	{"$5$", "$5$ (SHA-256-crypt) hashes are"},
	{"$6$", "$6$ (SHA-512-crypt) hashes are"},
	{"$2", "this bcrypt variant is"},
	{"$", "this hash format is"},
}

// checkBcrypt returns why hash is not a bcrypt hash the basic mechanism accepts, or "".
func checkBcrypt(hash string) string {
	const onlyBcrypt = "only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD"
	variant := len(hash) >= 4 && (hash[:4] == "$2a$" || hash[:4] == "$2b$" || hash[:4] == "$2y$")
	if !variant {
		for _, f := range htpasswdFormats {
			if strings.HasPrefix(hash, f.prefix) {
				return f.name + " not accepted: " + onlyBcrypt
			}
		}
		return "a plain-text or crypt(3) password is not accepted: " + onlyBcrypt
	}
	// $2y$NN$ then 22 characters of salt and 31 of hash, in bcrypt's base64 alphabet.
	if len(hash) != 60 || hash[6] != '$' || strings.IndexFunc(hash[7:], notBcryptBase64) >= 0 {
		return "malformed bcrypt hash (want 60 characters: $2y$, two cost digits, $, 53 of ./A-Za-z0-9)"
	}
	// Two digits: bcrypt.Cost alone would also take "+5", which the basic mechanism refuses.
	digits := hash[4] >= '0' && hash[4] <= '9' && hash[5] >= '0' && hash[5] <= '9'
	cost, err := bcrypt.Cost([]byte(hash))
	if !digits || err != nil || cost < bcrypt.MinCost || cost > MaxBcryptCost {
		return fmt.Sprintf("bcrypt cost must be between %d and %d (each step doubles the CPU of a check; %d already takes about a second of a core), got %q",
			bcrypt.MinCost, MaxBcryptCost, MaxBcryptCost, hash[4:6])
	}
	return ""
}

func notBcryptBase64(r rune) bool {
	return !(r == '.' || r == '/' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
}

// MaxBcryptCost is the highest bcrypt cost an htpasswd entry may have. One check at cost 14
// already takes about a second of a core, and each step doubles it: above it, every
// uncached request (a wrong password, an unknown user) would hold one of the few bcrypt
// slots, shared by every route, for seconds, a denial of service for everyone else.
const MaxBcryptCost = 14
