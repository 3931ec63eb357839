package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Load reads and parses a routes.yaml file; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes, validates and defaults one routes.yaml document; file names it in errors
// and becomes Config.Path. On failure the error is an Errors listing every problem found,
// each with file, line and field path; the config is then nil. ${VAR} references are read
// from the process environment.
func Parse(file string, data []byte) (*Config, error) {
	c, errs := parse(file, data, os.LookupEnv)
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

func parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, Errors) {
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
	d := &decoder{file: file, lookup: lookup, lines: map[string]int{}, merging: map[*yaml.Node]int{}}
	if doc.Kind != 0 {
		d.decode(&doc, reflect.ValueOf(c).Elem(), "")
		if root := doc.Content[0]; d.tooBig || root.Kind != yaml.MappingNode && !isNull(root) {
			sortErrors(d.errs)
			return nil, d.errs // nothing more to say about a non-mapping or partly decoded file
		}
	}
	v := &validator{file: file, lines: d.lines}
	v.config(c)
	applyDefaults(c, v.set)
	v.resolved(c)
	errs := append(d.errs, v.errs...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	c.Path = file
	return c, nil
}

// emptyDocument reports a document with no content, such as after a trailing "---".
func emptyDocument(n *yaml.Node) bool {
	return len(n.Content) == 0 || len(n.Content) == 1 && isNull(n.Content[0])
}
