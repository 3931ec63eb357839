package filter

import "net/http"

// HeaderHook wraps w so that hook runs once, on the final response's header map, just before
// the final status line is written (by WriteHeader or a first Write). 1xx responses pass
// through untouched. It is the building block of filters that only edit response headers.
func HeaderHook(w http.ResponseWriter, hook func(h http.Header, status int)) http.ResponseWriter {
	return &headerHookWriter{ResponseWriter: w, hook: hook}
}

type headerHookWriter struct {
	http.ResponseWriter
	hook  func(h http.Header, status int)
	fired bool
}

func (h *headerHookWriter) WriteHeader(status int) {
	if !h.fired && status >= 200 {
		h.fired = true
		h.hook(h.ResponseWriter.Header(), status)
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *headerHookWriter) Write(b []byte) (int, error) {
	if !h.fired {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

// Flush flushes the underlying writer (for code that asserts http.Flusher).
func (h *headerHookWriter) Flush() { _ = h.FlushError() }

// FlushError is Flush reporting the underlying writer's error (http.ResponseController
// prefers it): the proxy learns of a write timeout or a client gone from it.
func (h *headerHookWriter) FlushError() error {
	if !h.fired {
		h.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(h.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (h *headerHookWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }
