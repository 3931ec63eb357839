// Package compress is the per-route response compression filter: gzip or zstd
// (github.com/klauspost/compress, encoders pooled), chosen from the request's
// Accept-Encoding, for responses whose type is listed and whose body is at least min_bytes.
// It never touches a response the upstream encoded, marked no-transform, or sent as a
// range, and it lets 1xx responses, HEAD answers and protocol upgrades through untouched.
//
// The size is known from Content-Length; without one the body is held until min_bytes
// arrive (min_bytes 0: until the first byte). A Flush before then ends the wait: the
// response is taken for a stream (server-sent events, long polls, any body the upstream
// trickles) and, since a stream may idle for hours, it is compressed with stateless gzip,
// which keeps nothing between writes, instead of a pooled encoder (about 1 MiB for gzip,
// 0.6 MiB for zstd, held for the stream's whole life). A client that takes zstd but not
// gzip gets a stream as it is: zstd has no stateless encoder. The proxy flushes every
// response of unknown length right after its header, so behind it min_bytes and the pooled
// encoders apply to responses with a Content-Length, and the others are streams.
//
// A "type/*" entry does not cover text/event-stream: event streams are compressed only
// on a route that lists text/event-stream itself, and always as streams.
//
// A 304 gets the Vary and weakened ETag its 200 would have had (see notModified).
package compress

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
)

// Filter compresses one route's responses. It is safe for concurrent use.
type Filter struct {
	minBytes int
	// types are lower-case "type/subtype", or "type/" for a "type/*" entry.
	types []string
}

// New returns the filter for cfg, or nil when cfg is nil or disabled. cfg comes validated
// and with config's defaults filled in (the default type list lives there); New still
// refuses a negative min_bytes, an empty type list and a type that is not "type/subtype"
// or "type/*", rather than build a filter that silently does nothing.
func New(cfg *config.Compress) (*Filter, error) {
	if cfg == nil || (cfg.Enabled != nil && !*cfg.Enabled) {
		return nil, nil
	}
	if cfg.MinBytes < 0 {
		return nil, fmt.Errorf("compress.min_bytes: %d is negative", cfg.MinBytes)
	}
	if len(cfg.Types) == 0 {
		return nil, errors.New("compress.types: empty: no response would be compressed")
	}
	f := &Filter{minBytes: cfg.MinBytes, types: make([]string, 0, len(cfg.Types))}
	for i, t := range cfg.Types {
		// As config's validation reads it: a "*" subtype is the wildcard, a "*" inside
		// one is an ordinary token character.
		kind, sub, ok := strings.Cut(strings.ToLower(strings.TrimSpace(t)), "/")
		if !ok || !isToken(kind) || kind == "*" || !isToken(sub) {
			return nil, fmt.Errorf("compress.types[%d]: %q is not type/subtype or type/*", i, t)
		}
		if sub == "*" {
			f.types = append(f.types, kind+"/")
		} else {
			f.types = append(f.types, kind+"/"+sub)
		}
	}
	return f, nil
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// WrapResponse returns the writer the proxy writes the response to and the function that
// ends it. The writer decides at the final status whether to compress (see the package
// conditions); while a body without Content-Length is shorter than min_bytes it is held, and
// a Flush before that decides at once: a flushed response of unknown length is a stream, so
// it is compressed with stateless gzip (for a client that takes only zstd, not at all),
// each Write sending complete blocks. The finish function closes the encoder (writing its
// trailer) or writes a held small body as it came; writes after it fail. The writer and its
// finish function are the two allocations a response costs; the encoders and held-body
// buffers are pooled (a stream's stateless gzip writer is a third, of a few hundred bytes).
func (f *Filter) WrapResponse(w http.ResponseWriter, r *http.Request, _ *filter.Request) (http.ResponseWriter, func()) {
	rw := &responseWriter{
		next:   w,
		filter: f,
		head:   r.Method == http.MethodHead,
		// Negotiated only for a response that could be compressed: most are not.
		acceptEncoding: r.Header["Accept-Encoding"],
		ifNoneMatch:    r.Header["If-None-Match"],
	}
	return rw, rw.finish
}

// Filter is a response filter; the assertion keeps the method set from drifting.
var _ filter.ResponseFilter = (*Filter)(nil)

// eligible reports whether a response with this status and header may be compressed at
// all, whatever the client accepts: a status that has a body and is not a partial or
// unchanged answer, no coding applied upstream, no Cache-Control: no-transform, no range,
// and a listed Content-Type.
func (f *Filter) eligible(h http.Header, status int) bool {
	switch {
	case status < 200 || status > 599,
		status == http.StatusNoContent, status == http.StatusResetContent,
		status == http.StatusPartialContent, status == http.StatusNotModified:
		return false
	}
	// The type first: it rules out most responses that are not compressed, in one lookup.
	if !f.typeListed(h["Content-Type"]) {
		return false
	}
	if len(h["Content-Encoding"]) > 0 || len(h["Content-Range"]) > 0 {
		return false
	}
	return !hasToken(h["Cache-Control"], "no-transform")
}

// typeListed reports whether the media type (parameters ignored, case-insensitive) is
// one of the configured types.
func (f *Filter) typeListed(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	media, _ := cutByte(contentType[0], ';')
	media = trimOWS(media)
	for _, t := range f.types {
		if t[len(t)-1] == '/' {
			// A wildcard leaves out text/event-stream: a stream idles for most of its life,
			// and only a route that lists it explicitly has chosen to compress it.
			if len(media) > len(t) && strings.EqualFold(media[:len(t)], t) && !strings.EqualFold(media, eventStream) {
				return true
			}
		} else if strings.EqualFold(media, t) {
			return true
		}
	}
	return false
}

// eventStream is the media type of server-sent events.
const eventStream = "text/event-stream"

// isEventStream reports whether a Content-Type is text/event-stream (parameters ignored).
func isEventStream(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	media, _ := cutByte(contentType[0], ';')
	return strings.EqualFold(trimOWS(media), eventStream)
}

// matchesWeakened reports whether the request's If-None-Match values list the weak form
// (W/"x") of the response's strong ETag ("x"). Only the first ETag is read: a response has
// one, and the scan stays linear in the client's header whatever the upstream sends.
func matchesWeakened(ifNoneMatch, etags []string) bool {
	if len(etags) == 0 || !strings.HasPrefix(etags[0], `"`) {
		return false
	}
	tag := etags[0]
	for _, v := range ifNoneMatch {
		for v != "" {
			var element string
			element, v = cutByte(v, ',')
			element = trimOWS(element)
			if len(element) == len(tag)+2 && element[:2] == "W/" && element[2:] == tag {
				return true
			}
		}
	}
	return false
}

// hasToken reports whether any comma-separated element of values is token
// (case-insensitive), ignoring anything after an "=" (a directive's argument).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var element string
			element, v = cutByte(v, ',')
			element, _ = cutByte(element, '=')
			if strings.EqualFold(trimOWS(element), token) {
				return true
			}
		}
	}
	return false
}

// varyAcceptEncoding is the Vary value added; capped so an append copies.
var varyAcceptEncoding = []string{"Accept-Encoding"}[:1:1]

// addVary adds Accept-Encoding to Vary unless it (or "*") is already there. The existing
// slice is copied, never appended to: the upstream's header values may share an array.
func addVary(h http.Header) {
	old := h["Vary"]
	if len(old) == 0 {
		h["Vary"] = varyAcceptEncoding
		return
	}
	if hasToken(old, "accept-encoding") || hasToken(old, "*") {
		return
	}
	vary := make([]string, len(old)+1)
	copy(vary, old)
	vary[len(old)] = "Accept-Encoding"
	h["Vary"] = vary
}

// weakenETags makes strong ETags weak: the compressed bytes differ from the identity
// representation's, so a strong validator would claim byte equality that is not there
// (RFC 9110 8.8.1), and a cache could splice ranges of two different encodings.
func weakenETags(h http.Header) {
	tags := h["Etag"]
	if len(tags) == 0 {
		return
	}
	weak := make([]string, len(tags))
	for i, tag := range tags {
		if strings.HasPrefix(tag, `"`) {
			tag = "W/" + tag
		}
		weak[i] = tag
	}
	h["Etag"] = weak
}
