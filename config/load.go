package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds a config file. A routes.yaml is a few KiB, and 1 MiB holds thousands
// of routes; past that a mistaken path (`-config /dev/zero`, a log file) would be read whole
// and YAML's node tree costs about a hundred times the bytes in memory (issue #11, item 16).
const maxFileSize = 1 << 20

// Load reads and parses a routes.yaml file; see Parse. It reads at most a byte more than
// the size limit, so a file that never ends fails as fast as one that is merely too large.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, errs := parse(path, filepath.Dir(path), data, os.LookupEnv)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// readFile reads path up to maxFileSize+1 bytes: enough for Parse to tell it is too large.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

// Parse decodes, validates and defaults one routes.yaml document; file names it in errors
// and becomes Config.Path. On failure the error is an Errors listing every problem found,
// each with file, line and field path; the config is then nil. ${VAR} references are read
// from the process environment. Files the document names by a relative path (auth keys
// and users files) are relative to the working directory; Load reads them relative to the
// config file's directory instead.
func Parse(file string, data []byte) (*Config, error) {
	c, errs := parse(file, "", data, os.LookupEnv)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// parse is Parse with the directory relative file names are read from ("": the working
// directory).
func parse(file, dir string, data []byte, lookup func(string) (string, bool)) (*Config, Errors) {
	if len(data) > maxFileSize {
		return nil, Errors{{File: file, Msg: fmt.Sprintf("file larger than %d MiB: not a routes.yaml (a large one is a few hundred KiB)", maxFileSize>>20)}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{syntaxError(file, err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil && !emptyDocument(&extra):
		return nil, Errors{{File: file, Line: extra.Line, Msg: "only one YAML document is allowed (found a second one)"}}
	case err != nil && !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(file, err)}
	}

	c := &Config{}
	errs := newErrorList(file)
	d := &decoder{lookup: lookup, errs: errs, lines: map[string]int{}, sizes: map[string]int{}, merging: map[*yaml.Node]int{}, suggestions: map[suggestKey]string{}}
	if doc.Kind != 0 {
		d.decode(&doc, reflect.ValueOf(c).Elem(), "")
		if root := doc.Content[0]; d.tooBig || root.Kind != yaml.MappingNode && !isNull(root) {
			return nil, errs.result() // nothing more to say about a non-mapping or partly decoded file
		}
	}
	v := &validator{lines: d.lines, sizes: d.sizes, errs: errs}
	v.config(c)
	applyDefaults(c, v.set)
	v.resolved(c)
	v.resolvedAuth(c)
	c.AuthFiles = v.loadAuthFiles(c, dir)
	if e := errs.result(); len(e) > 0 {
		return nil, e
	}
	c.Path = file
	sum := sha256.Sum256(data)
	c.Digest = sum[:]
	return c, nil
}

// emptyDocument reports a document with no content, such as after a trailing "---".
func emptyDocument(n *yaml.Node) bool {
	return len(n.Content) == 0 || len(n.Content) == 1 && isNull(n.Content[0])
}
