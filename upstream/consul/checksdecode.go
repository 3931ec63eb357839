package consul

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// maxJSONDepth bounds how deeply nested a checks answer may be; Consul's is 3 levels deep.
const maxJSONDepth = 64

// decodeChecks reads a /v1/health/state/any answer (a JSON array of checks, or null) into
// entries, keeping only the fields checkEntry has. It walks the bytes once, where
// encoding/json scans the whole answer twice (once to find its end, once to decode) and
// matches every field name it skips: at 1,000 checks (450 KB) that is about 8 ms against
// 2, on every change (BenchmarkDecodeChecks). The answer is untrusted: anything that is not
// valid JSON of that shape is an error, never a panic. Field names match exactly (Consul
// writes them so); a string field that is not a string, or a ModifyIndex that is not an
// unsigned integer, is an error as it is for encoding/json; null leaves a field empty.
func decodeChecks(data []byte) ([]checkEntry, error) {
	d := checksDecoder{data: data}
	entries, err := d.answer()
	if err != nil {
		return nil, fmt.Errorf("consul: checks answer at byte %d: %w", d.pos, err)
	}
	return entries, nil
}

// checksDecoder reads one checks answer from data, left to right; pos is the next byte.
// lastNode lets consecutive checks of one node share the node name's string.
type checksDecoder struct {
	data     []byte
	pos      int
	lastNode string
}

// errSyntax is any malformed JSON; decodeChecks adds the byte offset.
var errSyntax = errors.New("invalid JSON")

// answer reads the whole answer: null or an array of checks (null elements are skipped),
// then nothing but white space.
func (d *checksDecoder) answer() ([]checkEntry, error) {
	d.space()
	if d.literal("null") {
		return nil, d.end()
	}
	if !d.consume('[') {
		return nil, errors.New("not an array")
	}
	entries := make([]checkEntry, 0, len(d.data)/400)
	d.space()
	if d.consume(']') {
		return entries, d.end()
	}
	for {
		var c checkEntry
		d.space()
		if !d.literal("null") {
			if err := d.check(&c); err != nil {
				return nil, err
			}
		}
		entries = append(entries, c)
		d.space()
		if d.consume(']') {
			return entries, d.end()
		}
		if !d.consume(',') {
			return nil, errSyntax
		}
	}
}

// end accepts only whitespace after the answer.
func (d *checksDecoder) end() error {
	d.space()
	if d.pos != len(d.data) {
		return errors.New("data after the answer")
	}
	return nil
}

// check reads one check object into c.
func (d *checksDecoder) check(c *checkEntry) error {
	if !d.consume('{') {
		return errors.New("a check is not an object")
	}
	d.space()
	if d.consume('}') {
		return nil
	}
	for {
		d.space()
		key, err := d.name()
		if err != nil {
			return err
		}
		d.space()
		if !d.consume(':') {
			return errSyntax
		}
		d.space()
		switch string(key) { // compared without a copy
		case "Node":
			err = d.stringField(&c.Node)
			if err == nil && c.Node == d.lastNode {
				c.Node = d.lastNode // one copy of a node's name for all its checks
			}
			d.lastNode = c.Node
		case "CheckID":
			err = d.stringField(&c.CheckID)
		case "ServiceName":
			err = d.stringField(&c.ServiceName)
		case "Status":
			err = d.stringField(&c.Status)
			c.Status = internStatus(c.Status)
		case "ModifyIndex":
			err = d.indexField(&c.ModifyIndex)
		default:
			err = d.skip(1)
		}
		if err != nil {
			return err
		}
		d.space()
		if d.consume('}') {
			return nil
		}
		if !d.consume(',') {
			return errSyntax
		}
	}
}

// stringField reads a string member's value into dst; null leaves dst as it is.
func (d *checksDecoder) stringField(dst *string) error {
	if d.literal("null") {
		return nil
	}
	s, err := d.string()
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// indexField reads ModifyIndex into dst: an unsigned integer that fits in 64 bits (a
// fraction, exponent or sign is an error, as with encoding/json); null leaves dst as it is.
func (d *checksDecoder) indexField(dst *uint64) error {
	if d.literal("null") {
		return nil
	}
	start := d.pos
	if err := d.number(); err != nil {
		return err
	}
	n, err := strconv.ParseUint(string(d.data[start:d.pos]), 10, 64)
	if err != nil {
		return errors.New("ModifyIndex is not an unsigned integer")
	}
	*dst = n
	return nil
}

// name reads an object's member name, without a copy when it is plain ASCII.
func (d *checksDecoder) name() ([]byte, error) {
	start := d.pos
	plain, err := d.skipString()
	if err != nil {
		return nil, err
	}
	if plain {
		return d.data[start+1 : d.pos-1], nil
	}
	var s string
	if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
		return nil, errSyntax
	}
	return []byte(s), nil
}

// internStatus returns Consul's own constant for a known status, so that the thousands of
// checks of an answer share four strings.
func internStatus(s string) string {
	for _, known := range [...]string{api.HealthPassing, api.HealthWarning, api.HealthCritical, api.HealthMaint} {
		if s == known {
			return known
		}
	}
	return s
}

// string reads a JSON string. Plain ASCII without escapes (every name Consul writes in
// practice) is taken as is; anything else goes through encoding/json, which decodes escapes
// and replaces invalid UTF-8 exactly as it would for the whole answer.
func (d *checksDecoder) string() (string, error) {
	start := d.pos
	plain, err := d.skipString()
	if err != nil {
		return "", err
	}
	if plain {
		return string(d.data[start+1 : d.pos-1]), nil
	}
	var s string
	if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// skipString moves past a string, checking its escapes; plain says it held only printable
// ASCII and no escape.
func (d *checksDecoder) skipString() (plain bool, err error) {
	if !d.consume('"') {
		return false, errors.New("want a string")
	}
	plain = true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		d.pos++
		switch {
		case c == '"':
			return plain, nil
		case c < 0x20:
			return false, errors.New("control character in a string")
		case c >= 0x80:
			plain = false
		case c == '\\':
			plain = false
			if d.pos >= len(d.data) {
				return false, errSyntax
			}
			e := d.data[d.pos]
			d.pos++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if d.pos+4 > len(d.data) {
					return false, errSyntax
				}
				for _, h := range d.data[d.pos : d.pos+4] {
					if !isHex(h) {
						return false, errSyntax
					}
				}
				d.pos += 4
			default:
				return false, errors.New("bad escape in a string")
			}
		}
	}
	return false, errors.New("unterminated string")
}

// isHex says whether c is a hexadecimal digit (of a \u escape).
func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// skip moves past any JSON value, checking its syntax; depth counts the enclosing values.
func (d *checksDecoder) skip(depth int) error {
	if depth > maxJSONDepth {
		return errors.New("nested too deeply")
	}
	if d.pos >= len(d.data) {
		return errSyntax
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.skipString()
		return err
	case c == '{':
		d.pos++
		d.space()
		if d.consume('}') {
			return nil
		}
		for {
			d.space()
			if _, err := d.skipString(); err != nil {
				return err
			}
			d.space()
			if !d.consume(':') {
				return errSyntax
			}
			d.space()
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.space()
			if d.consume('}') {
				return nil
			}
			if !d.consume(',') {
				return errSyntax
			}
		}
	case c == '[':
		d.pos++
		d.space()
		if d.consume(']') {
			return nil
		}
		for {
			d.space()
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.space()
			if d.consume(']') {
				return nil
			}
			if !d.consume(',') {
				return errSyntax
			}
		}
	case c == 't':
		return d.want("true")
	case c == 'f':
		return d.want("false")
	case c == 'n':
		return d.want("null")
	default:
		return d.number()
	}
}

// number moves past a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *checksDecoder) number() error {
	d.consume('-')
	switch {
	case d.consume('0'):
	case d.digits() == 0:
		return errors.New("want a number")
	}
	if d.consume('.') && d.digits() == 0 {
		return errSyntax
	}
	if d.consume('e') || d.consume('E') {
		if !d.consume('+') {
			d.consume('-')
		}
		if d.digits() == 0 {
			return errSyntax
		}
	}
	return nil
}

// digits moves past a run of decimal digits and returns its length.
func (d *checksDecoder) digits() int {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos - start
}

// space moves past JSON white space.
func (d *checksDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// consume moves past c if it comes next, and says whether it did.
func (d *checksDecoder) consume(c byte) bool {
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// literal consumes word if it comes next.
func (d *checksDecoder) literal(word string) bool {
	if len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word {
		d.pos += len(word)
		return true
	}
	return false
}

// want consumes word, which must come next.
func (d *checksDecoder) want(word string) error {
	if !d.literal(word) {
		return errSyntax
	}
	return nil
}
