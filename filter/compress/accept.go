package compress

import "strings"

// encoding is a content coding this filter can produce; identity is none.
type encoding uint8

const (
	identity encoding = iota
	encodingGzip
	encodingZstd
)

// contentEncoding holds each coding's Content-Encoding value, capped so that an append by
// a later writer copies instead of writing into this shared array.
var contentEncoding = [...][]string{
	encodingGzip: []string{"gzip"}[:1:1],
	encodingZstd: []string{"zstd"}[:1:1],
}

// notListed marks a coding Accept-Encoding does not mention.
const notListed = -1

// weights are an Accept-Encoding's q-values in thousandths, notListed for a coding it does
// not mention.
type weights struct{ gzip, zstd, identity int }

// negotiate picks the coding for a request's Accept-Encoding values (RFC 9110 12.5.3): the
// highest q-value among zstd and gzip (x-gzip counts as gzip), zstd first on a tie; a coding
// not listed takes the q of "*" when there is one, else it is not acceptable; q=0 refuses.
// An explicit "identity;q=N" higher than the best coding's q keeps the body as it is. No
// header (or an empty one) means identity: RFC 9110 lets a server pick any coding then, but
// clients that send nothing are the ones least likely to decode one. Elements with a
// malformed q-value are ignored, as are unknown parameters. It does not allocate.
func negotiate(values []string) encoding { return parseWeights(values).best() }

// parseWeights reads Accept-Encoding values as negotiate describes.
func parseWeights(values []string) weights {
	gzipQ, zstdQ, anyQ, identityQ := notListed, notListed, notListed, notListed
	for _, v := range values {
		for v != "" {
			var element string
			element, v = cutByte(v, ',')
			name, q, ok := parseElement(element)
			if !ok {
				continue
			}
			// The length picks the candidate first: EqualFold does not compare lengths.
			switch len(name) {
			case len("zstd"): // and gzip
				if strings.EqualFold(name, "zstd") {
					zstdQ = max(zstdQ, q)
				} else if strings.EqualFold(name, "gzip") {
					gzipQ = max(gzipQ, q)
				}
			case len("x-gzip"):
				if strings.EqualFold(name, "x-gzip") {
					gzipQ = max(gzipQ, q)
				}
			case len("*"):
				if name == "*" {
					anyQ = max(anyQ, q)
				}
			case len("identity"):
				if strings.EqualFold(name, "identity") {
					identityQ = max(identityQ, q)
				}
			}
		}
	}
	if zstdQ == notListed {
		zstdQ = max(anyQ, 0)
	}
	if gzipQ == notListed {
		gzipQ = max(anyQ, 0)
	}
	return weights{gzip: gzipQ, zstd: zstdQ, identity: identityQ}
}

// best is the coding for a response compressed as a whole.
func (q weights) best() encoding {
	best, bestQ := identity, 0
	switch {
	case q.zstd > 0 && q.zstd >= q.gzip:
		best, bestQ = encodingZstd, q.zstd
	case q.gzip > 0:
		best, bestQ = encodingGzip, q.gzip
	}
	if q.identity > bestQ {
		return identity
	}
	return best
}

// stream is the coding for a stream: gzip when the client takes it (and does not weigh
// identity higher), else identity. Streams are compressed statelessly so that nothing is
// held between flushes, and only gzip has a stateless encoder (see newStreamCompressor).
func (q weights) stream() encoding {
	if q.gzip > 0 && q.identity <= q.gzip {
		return encodingGzip
	}
	return identity
}

// parseElement splits one Accept-Encoding list element, `coding *( OWS ";" OWS param )`,
// into the coding and its q-value in thousandths (1000 when absent). ok is false for an
// empty element or a malformed q-value.
func parseElement(element string) (name string, q int, ok bool) {
	name, params := cutByte(element, ';')
	name = trimOWS(name)
	if name == "" {
		return "", 0, false
	}
	q = 1000
	for params != "" {
		var param string
		param, params = cutByte(params, ';')
		param = trimOWS(param)
		if len(param) < 2 || param[1] != '=' || (param[0] != 'q' && param[0] != 'Q') {
			continue // not a weight: Accept-Encoding defines no other parameter
		}
		if q, ok = parseQValue(param[2:]); !ok {
			return "", 0, false
		}
	}
	return name, q, true
}

// parseQValue parses RFC 9110's qvalue, `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`,
// into thousandths.
func parseQValue(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int(s[0] - '0')
	if len(s) == 1 {
		return whole * 1000, true
	}
	if s[1] != '.' {
		return 0, false
	}
	fraction, scale := 0, 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' || (whole == 1 && c != '0') {
			return 0, false
		}
		fraction += int(c-'0') * scale
		scale /= 10
	}
	return whole*1000 + fraction, true
}

// cutByte is strings.Cut for a one-byte separator, which it finds with IndexByte.
func cutByte(s string, sep byte) (before, after string) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// trimOWS trims RFC 9110's optional whitespace (spaces and tabs) from both ends.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
