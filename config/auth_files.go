package config

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
)

// Bounds on the files auth blocks name. They stop a wrong path (a log, /dev/zero) early and
// bound what one config makes the loader read and hold. The keys file is YAML, whose
// node tree is the cost: a file of one-character list items allocates about 125 bytes per
// byte (263 MB for 2 MiB), so it gets 2 MiB, which holds about 23,000 keys of 90 bytes
// (parsed in about 0.2 s). An htpasswd file is read line by line (100,000 users in about
// 0.3 s and 46 MB): 16 MiB holds more than maxAuthEntries users.
const (
	maxKeysFileSize  = 2 << 20
	maxUsersFileSize = 16 << 20
	maxAuthFiles     = 64 // distinct keys and users files in one config
)

// authFileKind tells the two file formats apart.
type authFileKind int

const (
	keysFile authFileKind = iota
	usersFile
)

// authFile is one keys or users file as read: what it holds, or its errors.
type authFile struct {
	digest []byte // SHA-256 of the bytes read
	keys   []APIKey
	names  map[string]bool // key names, for allow lists
	users  map[string][]byte
	errs   []fileError
}

// authFiles reads each keys and users file a config names once, however many routes
// name it. Relative paths are relative to dir.
type authFiles struct {
	dir   string
	files map[string]*authFile // by kind and absolute path
	read  []AuthFile
}

// load returns the file named (as written) by name, reading it the first time.
func (af *authFiles) load(name string, kind authFileKind) *authFile {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(af.dir, path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	key := fmt.Sprint(kind, ":", path)
	if f, ok := af.files[key]; ok {
		return f
	}
	f := &authFile{}
	af.files[key] = f
	if len(af.files) > maxAuthFiles {
		f.errs = []fileError{{0, fmt.Sprintf("more than %d keys and users files in one config", maxAuthFiles)}}
		return f
	}
	limit := int64(maxKeysFileSize)
	if kind == usersFile {
		limit = maxUsersFileSize
	}
	data, err := readLimited(path, limit)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%v (%s)", pe.Err, path)
		}
		f.errs = []fileError{{0, err.Error()}}
		return f
	}
	sum := sha256.Sum256(data)
	f.digest = sum[:]
	if !slices.ContainsFunc(af.read, func(r AuthFile) bool { return r.Path == path }) {
		af.read = append(af.read, AuthFile{Path: path, Digest: sum[:]})
	}
	if kind == keysFile {
		f.keys, f.errs = parseKeysFile(data)
		f.names = make(map[string]bool, len(f.keys))
		for _, k := range f.keys {
			f.names[k.Name] = true
		}
	} else {
		f.users, f.errs = parseHtpasswd(data)
	}
	return f
}

// readLimited reads at most limit bytes of path; a longer file is an error, and so is
// anything but a regular file: a FIFO (or /dev/stdin) would wait for a writer forever, and
// a device never ends. The file is opened without blocking and then checked, not checked
// and then opened: a FIFO put in its place between the two would block the reload.
func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d MiB (%s)", limit>>20, path)
	}
	return data, nil
}

// loadAuthFiles reads the keys and users files of every enabled auth block, fills
// APIKeyAuth.Keys and BasicAuth.Users, checks allow lists against them and returns the
// files read, sorted by path. Routes that name one file share what was read from it
// (Keys and Users are read-only). A file's errors are reported where its name is written,
// so a file named once in `defaults:` is reported once, however many routes use it.
func (v *validator) loadAuthFiles(c *Config, dir string) []AuthFile {
	files := &authFiles{dir: dir, files: map[string]*authFile{}}
	load := func(p string, a *Auth) {
		if a == nil {
			return
		}
		if k := a.APIKey; k != nil && k.KeysFile != "" {
			f := files.load(k.KeysFile, keysFile)
			if v.fileErrors(v.writtenAt(p, ".auth.api_key.keys_file"), k.KeysFile, f.errs) {
				k.Keys, k.KeysDigest = f.keys, f.digest
				v.allowed(v.writtenAt(p, ".auth.api_key.allow"), k.Allow, func(n string) bool { return f.names[n] }, "no key named %q in %s", k.KeysFile)
			}
		}
		if b := a.Basic; b != nil && b.UsersFile != "" {
			f := files.load(b.UsersFile, usersFile)
			if v.fileErrors(v.writtenAt(p, ".auth.basic.users_file"), b.UsersFile, f.errs) {
				b.Users, b.UsersDigest = f.users, f.digest
				v.allowed(v.writtenAt(p, ".auth.basic.allow"), b.Allow, func(n string) bool { return f.users[n] != nil }, "no user %q in %s", b.UsersFile)
			}
		}
	}
	load("defaults", c.Defaults.Auth)
	for i := range c.Routes {
		load(routePath(i), c.Routes[i].Auth)
	}
	slices.SortFunc(files.read, func(a, b AuthFile) int { return cmp.Compare(a.Path, b.Path) })
	return files.read
}

// writtenAt returns where the value of a policy's key comes from: the policy's own key
// when it writes it, else the defaults' (inherited), else the policy's (a built-in value).
func (v *validator) writtenAt(p, key string) string {
	if !v.set(p+key) && v.set("defaults"+key) {
		return "defaults" + key
	}
	return p + key
}

// fileErrors reports a file's errors at p, each with the file's name and line, and
// reports whether there were none.
func (v *validator) fileErrors(p, name string, errs []fileError) bool {
	for _, e := range errs {
		if e.Line > 0 {
			v.errorf(p, "%s:%d: %s", name, e.Line, message(e.Msg))
		} else {
			v.errorf(p, "%s: %s", name, message(e.Msg))
		}
	}
	return len(errs) == 0
}

// allowed reports the names of an allow list written at p that the file does not hold.
func (v *validator) allowed(p string, names []string, has func(string) bool, format, file string) {
	for i, n := range names {
		if n != "" && !has(n) {
			v.errorf(fmt.Sprintf("%s[%d]", p, i), format, n, file)
		}
	}
}
