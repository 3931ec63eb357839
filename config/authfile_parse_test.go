package config

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// fileErrorLines formats a parser's errors as "line: message" for comparison.
func fileErrorLines(errs []fileError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = fmt.Sprintf("%d: %s", e.Line, e.Msg)
	}
	return out
}

func TestParseKeysFile(t *testing.T) {
	h1 := strings.Repeat("ab", 32)
	h2 := strings.Repeat("cd", 32)
	tests := []struct {
		name string
		data string
		want []string // errors; none: the file loads
		keys int
	}{
		{"two keys", "keys:\n  - {name: a, sha256: " + h1 + "}\n  - name: b\n    sha256: " + strings.ToUpper(h2) + "\n", nil, 2},
		{"a number-like name and hash", "keys:\n  - {name: 1e3, sha256: " + strings.Repeat("1", 64) + "}\n", nil, 1},
		{"empty file", "", []string{"0: empty file (want keys: a list of {name, sha256})"}, 0},
		{"comment only", "# nothing\n", []string{"0: empty file (want keys: a list of {name, sha256})"}, 0},
		{"not a mapping", "- a\n", []string{"1: expected a mapping with keys:, got a list"}, 0},
		{"syntax", "keys: [\n", []string{"2: invalid YAML: did not find expected node content"}, 0},
		{"two documents", "keys: []\n---\nkeys: []\n", []string{"2: only one YAML document is allowed"}, 0},
		{"unknown and missing keys", "key: []\n", []string{
			"1: unknown key \"key\" (want keys: a list of {name, sha256})",
			"1: missing keys (want keys: a list of {name, sha256})"}, 0},
		{"keys twice", "keys: [{name: a, sha256: " + h1 + "}]\nkeys: []\n", []string{"2: duplicate key \"keys\" (first at line 1)"}, 0},
		{"empty list", "keys: []\n", []string{"1: keys: must not be empty (a keys file admits no one without keys)"}, 0},
		{"not a list", "keys: {a: b}\n", []string{"1: keys: expected a list, got a mapping"}, 0},
		{"alias", "a: &k [x]\nkeys: *k\n", []string{"1: unknown key \"a\" (want keys: a list of {name, sha256})", "2: keys: aliases are not allowed in a keys file"}, 0},
		{"entries", "keys:\n" +
			"  - x\n" +
			"  - {name: a, sha256: " + h1 + ", sha: 1, sha2: 2}\n" +
			"  - {name: a, sha256: " + h2 + "}\n" +
			"  - {name: b, sha256: " + h1 + "}\n" +
			"  - {name: \"c d\", sha256: abc}\n" +
			"  - {name: ~}\n" +
			"  - {name: [e], sha256: {x: 1}, name: f}\n" +
			"  - {name: g, sha256: " + h1[:63] + "z}\n" +
			"  - &e {name: h, sha256: " + h2 + "}\n" +
			"  - *e\n" +
			"  - {name: \"" + strings.Repeat("n", 129) + "\", sha256: " + h2 + "}\n" +
			"  - {name: \"é\", sha256: " + h2 + "}\n", []string{
			"2: keys[0]: expected a mapping {name, sha256}, got \"x\"",
			"3: keys[1]: unknown key \"sha\" (want name, sha256)",
			"3: keys[1]: unknown key \"sha2\" (did you mean \"sha256\"?)",
			"4: keys[2].name: duplicate name \"a\" (first at keys[1])",
			"5: keys[3].sha256: same hash as keys[1] (\"a\"): one key under two names",
			"6: keys[4].name: invalid name \"c d\": want 1 to 128 printable ASCII characters, no spaces",
			"6: keys[4].sha256: not 64 hex digits",
			"7: keys[5].name: missing",
			"7: keys[5].sha256: missing",
			"8: keys[6]: duplicate key \"name\" (first at line 8)",
			"8: keys[6].name: expected a string, got a list",
			"8: keys[6].sha256: expected a string, got a mapping",
			"9: keys[7].sha256: not 64 hex digits",
			"11: keys[9]: aliases are not allowed in a keys file",
			"12: keys[10].name: invalid name \"" + strings.Repeat("n", 80) + "... (129 bytes)\": want 1 to 128 printable ASCII characters, no spaces",
			"12: keys[10].sha256: same hash as keys[8] (\"h\"): one key under two names",
			"13: keys[11].name: invalid name \"é\": want 1 to 128 printable ASCII characters, no spaces",
			"13: keys[11].sha256: same hash as keys[8] (\"h\"): one key under two names"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, errs := parseKeysFile([]byte(tc.data))
			got := fileErrorLines(errs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if len(keys) != tc.keys || len(errs) > 0 && keys != nil {
				t.Fatalf("%d keys with %d errors, want %d keys", len(keys), len(errs), tc.keys)
			}
		})
	}
}

func TestParseKeysFileHashes(t *testing.T) {
	keys, errs := parseKeysFile([]byte("keys:\n  - {name: billing, sha256: " + fmt.Sprintf("%X", sha256.Sum256([]byte("secret"))) + "}\n"))
	if len(errs) > 0 || len(keys) != 1 || keys[0].Name != "billing" || keys[0].SHA256 != sha256.Sum256([]byte("secret")) {
		t.Fatalf("keys %+v errors %v", keys, errs)
	}
}

func TestParseKeysFileTooMany(t *testing.T) {
	var b strings.Builder
	b.WriteString("keys:\n")
	for i := range maxAuthEntries + 1 {
		fmt.Fprintf(&b, "- {name: k%d, sha256: %x}\n", i, sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	if _, errs := parseKeysFile([]byte(b.String())); len(errs) != 1 || errs[0].Msg != fmt.Sprintf("keys: more than %d keys", maxAuthEntries) {
		t.Fatalf("errors %v", fileErrorLines(errs))
	}
}

func TestParseHtpasswd(t *testing.T) {
	hash := func(pass string, cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	alice, bob := hash("wonderland", bcrypt.MinCost), hash("builder", 5)
	tests := []struct {
		name  string
		data  string
		want  []string
		users []string
	}{
		{"entries, comments, blank lines, CRLF", "# users\r\n\r\nalice:" + alice + "\r\n  # indented comment\n\t\nbob:" + strings.Replace(bob, "$2a$", "$2y$", 1) + "  \n", nil, []string{"alice", "bob"}},
		{"2b and no final newline", "carol:" + strings.Replace(alice, "$2a$", "$2b$", 1), nil, []string{"carol"}},
		{"a user name with a space inside", "Jane Doe:" + alice + "\n", nil, []string{"Jane Doe"}},
		{"empty", "", []string{"0: no users (want user:bcrypt-hash lines; htpasswd -nbB USER PASSWORD makes one)"}, nil},
		{"comments only", "# a\n\n", []string{"0: no users (want user:bcrypt-hash lines; htpasswd -nbB USER PASSWORD makes one)"}, nil},
		{"other formats", "a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nb:$apr1$x$y\nc:$1$x$y\nd:$5$x$y\ne:$6$x$y\nf:$2x$04$abc\ng:$argon2id$v=19$x\nh:abJnggxhB/yWI\ni:\n", []string{
			`1: user "a": {SHA} (SHA-1) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`2: user "b": $apr1$ (Apache MD5) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`3: user "c": $1$ (MD5-crypt) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`4: user "d": $5$ (SHA-256-crypt) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`5: user "e": $6$ (SHA-512-crypt) hashes are not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`6: user "f": this bcrypt variant is not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`7: user "g": this hash format is not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`8: user "h": a plain-text or crypt(3) password is not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`,
			`9: user "i": a plain-text or crypt(3) password is not accepted: only bcrypt ($2a$, $2b$, $2y$) is accepted; make an entry with htpasswd -nbB USER PASSWORD`}, nil},
		{"malformed bcrypt", "a:" + alice[:59] + "\nb:" + alice[:7] + "!" + alice[8:] + "\nc:$2a$03" + alice[6:] + "\nd:$2a$32" + alice[6:] + "\ne:$2a$x4" + alice[6:] + "\nf:$2a$04x" + alice[8:] + "\ng:$2a$15" + alice[6:] + "\nh:$2a$+5" + alice[6:] + "\n", []string{
			`1: user "a": malformed bcrypt hash (want 60 characters: $2y$, two cost digits, $, 53 of ./A-Za-z0-9)`,
			`2: user "b": malformed bcrypt hash (want 60 characters: $2y$, two cost digits, $, 53 of ./A-Za-z0-9)`,
			`3: user "c": bcrypt cost must be between 4 and 14 (each step doubles the CPU of a check; 14 already takes about a second of a core), got "03"`,
			`4: user "d": bcrypt cost must be between 4 and 14 (each step doubles the CPU of a check; 14 already takes about a second of a core), got "32"`,
			`5: user "e": bcrypt cost must be between 4 and 14 (each step doubles the CPU of a check; 14 already takes about a second of a core), got "x4"`,
			`6: user "f": malformed bcrypt hash (want 60 characters: $2y$, two cost digits, $, 53 of ./A-Za-z0-9)`,
			`7: user "g": bcrypt cost must be between 4 and 14 (each step doubles the CPU of a check; 14 already takes about a second of a core), got "15"`,
			`8: user "h": bcrypt cost must be between 4 and 14 (each step doubles the CPU of a check; 14 already takes about a second of a core), got "+5"`}, nil},
		{"bad lines and names", "just-a-password\nalice:" + alice + "\nalice:" + bob + "\n:" + alice + "\n bob:" + alice + "\nb\x01b:" + alice + "\n\xff:" + alice + "\n" + strings.Repeat("u", 256) + ":" + alice + "\n", []string{
			`1: want user:bcrypt-hash (htpasswd -nbB USER PASSWORD makes one)`,
			`3: duplicate user "alice" (first at line 2)`,
			`4: invalid user name "": want 1 to 255 characters, no control characters, no leading or trailing spaces`,
			`5: invalid user name " bob": want 1 to 255 characters, no control characters, no leading or trailing spaces`,
			`6: invalid user name "b\x01b": want 1 to 255 characters, no control characters, no leading or trailing spaces`,
			`7: invalid user name "\xff": want 1 to 255 characters, no control characters, no leading or trailing spaces`,
			`8: invalid user name "` + strings.Repeat("u", 80) + `... (256 bytes)": want 1 to 255 characters, no control characters, no leading or trailing spaces`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users, errs := parseHtpasswd([]byte(tc.data))
			got := fileErrorLines(errs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if len(users) != len(tc.users) {
				t.Fatalf("users %v, want %v", users, tc.users)
			}
			for _, u := range tc.users {
				if users[u] == nil {
					t.Fatalf("user %q missing from %v", u, users)
				}
			}
		})
	}
	// The hashes kept are the file's, and check against their passwords.
	users, _ := parseHtpasswd([]byte("alice:" + alice + "\n"))
	if bcrypt.CompareHashAndPassword(users["alice"], []byte("wonderland")) != nil {
		t.Fatal("stored hash does not match its password")
	}
}

// No error repeats what follows the colon of a line, nor a line without one: either may be
// a password written where a hash belongs, and errors go to logs.
func TestParseHtpasswdKeepsSecretsOut(t *testing.T) {
	const secret = "Tr0ub4dor&3-secret"
	data := secret + "\nalice:" + secret + "\nbob:$2a$04$" + secret + "\ncarol:$apr1$" + secret + "\n"
	_, errs := parseHtpasswd([]byte(data))
	if len(errs) != 4 {
		t.Fatalf("errors %v", fileErrorLines(errs))
	}
	for _, e := range errs {
		if strings.Contains(e.Msg, secret) || strings.Contains(e.Msg, "Tr0ub") {
			t.Errorf("error repeats a secret: %q", e.Msg)
		}
	}
}

// A file of bad lines gives at most maxErrors errors and a count of the rest.
func TestParseHtpasswdErrorBound(t *testing.T) {
	_, errs := parseHtpasswd([]byte(strings.Repeat("x\n", maxErrors+7)))
	if len(errs) != maxErrors+1 || errs[maxErrors].Msg != "... and 7 more errors in this file" {
		t.Fatalf("%d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func TestParseHtpasswdTooMany(t *testing.T) {
	const h = "$2a$04$xXg5mQBT7aP2VLgIjZrFVOPRteRePA9ODwTOkeX5TZ1b9NMLIeKGe"
	var b strings.Builder
	for i := range maxAuthEntries + 1 {
		fmt.Fprintf(&b, "u%d:%s\n", i, h)
	}
	if _, errs := parseHtpasswd([]byte(b.String())); len(errs) != 1 || errs[0].Msg != fmt.Sprintf("more than %d users", maxAuthEntries) || errs[0].Line != maxAuthEntries+1 {
		t.Fatalf("errors %v", fileErrorLines(errs))
	}
}

// keysFileOf returns a keys file of n entries.
func keysFileOf(n int) []byte {
	var b strings.Builder
	b.WriteString("keys:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: key-%d\n    sha256: %x\n", i, sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	return []byte(b.String())
}

func BenchmarkParseKeysFile10k(b *testing.B) {
	data := keysFileOf(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := parseKeysFile(data); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

func BenchmarkParseHtpasswd10k(b *testing.B) {
	const h = "$2a$04$xXg5mQBT7aP2VLgIjZrFVOPRteRePA9ODwTOkeX5TZ1b9NMLIeKGe"
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "user%d:%s\n", i, h)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := parseHtpasswd(data); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
