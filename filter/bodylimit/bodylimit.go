// Package bodylimit is the max_body_bytes request filter: a request body larger than the
// route's limit is refused with 413 before anything is forwarded, counted as it streams so
// no body is ever buffered to measure it.
package bodylimit

import (
	"net/http"

	"github.com/switchyard/switchyard/filter"
)

// Filter refuses request bodies past a fixed size.
type Filter struct {
	limit int64
}

// New returns the filter for a limit of limit bytes, or nil (no filter) when limit <= 0.
func New(limit int64) *Filter {
	if limit <= 0 {
		return nil
	}
	return &Filter{limit: limit}
}

// closeValue is shared: header values are never modified once set.
var closeValue = []string{"close"}

// ServeRequest answers 413 at once when the declared Content-Length is over the limit. An
// unknown length (chunked) is counted as it is read instead: r.Body becomes an
// http.MaxBytesReader, whose Read fails with *http.MaxBytesError once the limit is crossed,
// which the proxy answers with 413 when no response has begun. A declared length within the
// limit needs no counting: net/http's body reader (HTTP/1 and HTTP/2 alike) never yields
// more than Content-Length bytes. A nil Filter passes everything.
func (f *Filter) ServeRequest(w http.ResponseWriter, r *http.Request, q *filter.Request) bool {
	if f == nil {
		return true
	}
	if r.ContentLength > f.limit {
		// The body stays unread on the connection, and skipping it would mean reading up
		// to Content-Length bytes from a client that was just told it sends too much:
		// closing the connection after the answer is the only safe way past it.
		w.Header()["Connection"] = closeValue
		q.Refuse(w, http.StatusRequestEntityTooLarge)
		return false
	}
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, f.limit)
	}
	return true
}

// Filter is a request filter; the assertion keeps the method set from drifting.
var _ filter.RequestFilter = (*Filter)(nil)
