package proxy

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/upstream"
)

// attemptState is what one attempt's outgoing request refers to, allocated together.
type attemptState struct {
	url      url.URL
	trace    httptrace.ClientTrace
	timedOut atomic.Bool
}

// attemptResult is one upstream exchange up to response headers.
type attemptResult struct {
	res     *http.Response
	err     error
	kind    upstream.ErrorKind
	latency time.Duration
	cancel  context.CancelFunc // ends the attempt's context once the body is done
	// timer bounds the attempt; still running after a response arrived, so it also bounds
	// reading a held body. Stop it with stopTimer before relaying.
	timer    *time.Timer
	timedOut *atomic.Bool
}

// stopTimer ends the attempt's timeout: what remains is relaying, which the client paces.
func (a *attemptResult) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

// attempt sends the request to m and waits for response headers, bounded by the route's
// timeout (per try, if set). The timeout covers only the wait for headers: a long download
// or stream is not cut off by it.
func (x *exchange) attempt(m *upstream.Member) attemptResult {
	rt := x.rt
	// One allocation holds what the attempt's request points at.
	st := &attemptState{url: url.URL{Scheme: m.Scheme, Host: m.Key, Path: x.path, RawPath: x.rawPath, RawQuery: x.r.URL.RawQuery}}
	ctx, cancel, timeout := x.attemptContext()
	// Informational responses (103 Early Hints) are relayed as they arrive, as httputil does.
	st.trace.Got1xxResponse = x.relay1xx
	ctx = httptrace.WithClientTrace(ctx, &st.trace)
	var timer *time.Timer
	timedOut := &st.timedOut
	cbody := x.cbody
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			cancel()
			if cbody != nil {
				cbody.expire() // still waiting on the client's body: that wait ends too
			}
		})
	}
	rtp := x.roundTripper(m)
	out := x.r.WithContext(ctx)
	out.URL = &st.url
	if rt.RewriteHost != "" {
		out.Host = rt.RewriteHost
	}
	out.Header = x.header
	out.RequestURI = ""
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false
	out.TransferEncoding = nil
	out.Trailer = nil
	switch {
	case x.body != nil:
		x.cbody.nextAttempt()
		out.Body = x.body.reader()
	case x.cbody != nil:
		out.Body = x.cbody
		if x.h.protocols != nil && rtp != x.h.protocols.http1 {
			out.Body = &attemptBody{b: x.cbody, attempt: x.cbody.nextAttempt()}
		}
	default:
		out.Body = nil
		out.ContentLength = 0
	}
	if x.cbody != nil {
		out.Trailer = x.cbody.trailOut
		x.cbody.useStreamPacing(x.h.protocols != nil && rtp != x.h.protocols.http1)
	}

	x.relayMu.Lock()
	x.relayDone = false
	x.relayMu.Unlock()
	start := time.Now()
	res, err := rtp.RoundTrip(out)
	lat := time.Since(start)
	x.relayMu.Lock()
	x.relayDone = true // the final answer is the handler's now
	x.relayMu.Unlock()
	if err != nil {
		if timer != nil {
			timer.Stop()
		}
		cancel()
		clientGone := x.r.Context().Err() != nil
		// A gRPC upstream enforces the call's deadline too and may reset the stream a moment
		// before the gateway's own timer fires: past the deadline, it is the deadline's doing.
		expired := timedOut.Load() || x.pastDeadline()
		return attemptResult{err: err, kind: classify(err, clientGone, expired), latency: lat, cancel: cancel, timedOut: timedOut}
	}
	return attemptResult{res: res, latency: lat, cancel: cancel, timer: timer, timedOut: timedOut}
}
