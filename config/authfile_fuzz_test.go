package config

import (
	"bytes"
	"testing"
)

// FuzzKeysFile checks that parseKeysFile never panics and returns either keys or errors,
// a bounded number of them, and that every key it returns is valid and unique.
func FuzzKeysFile(f *testing.F) {
	for _, s := range []string{
		"keys:\n  - {name: a, sha256: " + string(bytes.Repeat([]byte("ab"), 32)) + "}\n",
		"keys: []\n",
		"keys: &a [*a]\n",
		"keys:\n  - <<: {name: a}\n    sha256: 00\n",
		"keys: [{name: a, sha256: " + string(bytes.Repeat([]byte("AB"), 32)) + "}, {name: b, sha256: " + string(bytes.Repeat([]byte("ab"), 32)) + "}]\n",
		"--- \nkeys:\n---\n",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, errs := parseKeysFile(data)
		if (keys == nil) == (len(errs) == 0) {
			t.Fatalf("%d keys and %d errors", len(keys), len(errs))
		}
		if len(errs) > maxErrors+1 || len(keys) > maxAuthEntries {
			t.Fatalf("%d errors, %d keys", len(errs), len(keys))
		}
		// YAML breaks lines at CR too.
		lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
		for _, e := range errs {
			if e.Line < 0 || e.Line > lines+1 || e.Msg == "" {
				t.Fatalf("error %+v in a file of %d lines", e, lines)
			}
		}
		names, hashes := map[string]bool{}, map[[32]byte]bool{}
		for _, k := range keys {
			if !validKeyName(k.Name) || names[k.Name] || hashes[k.SHA256] {
				t.Fatalf("key %+v invalid or repeated", k)
			}
			names[k.Name], hashes[k.SHA256] = true, true
		}
	})
}

// FuzzHtpasswd checks that parseHtpasswd never panics and returns either users or errors,
// a bounded number of them, and that every entry it returns is a valid user with a bcrypt
// hash the basic mechanism accepts.
func FuzzHtpasswd(f *testing.F) {
	const h = "$2a$04$xXg5mQBT7aP2VLgIjZrFVOPRteRePA9ODwTOkeX5TZ1b9NMLIeKGe"
	for _, s := range []string{
		"alice:" + h + "\n",
		"# c\r\n\r\nbob:" + h + "\r\nbob:" + h + "\n",
		"a:{SHA}x\nb:$apr1$x\nc:plain\n",
		"a:$2y$31$" + h[7:] + "\n",
		":\n:\n\n#",
		"\xff:" + h,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		users, errs := parseHtpasswd(data)
		if (users == nil) == (len(errs) == 0) {
			t.Fatalf("%d users and %d errors", len(users), len(errs))
		}
		if len(errs) > maxErrors+1 || len(users) > maxAuthEntries {
			t.Fatalf("%d errors, %d users", len(errs), len(users))
		}
		for u, hash := range users {
			if !validUserName(u) || checkBcrypt(string(hash)) != "" {
				t.Fatalf("entry %q:%q accepted", u, hash)
			}
		}
	})
}
