// Package conformance is a raw-socket conformance suite for the real gateway binary
// (issue #11). It holds no library code: everything lives in its tests.
//
// TestMain builds cmd/switchyard once; each test writes its own routes.yaml, starts the binary
// on free loopback ports (with its own embedded etcd, so tests run in parallel), and talks to
// it with hand-written request bytes over plain TCP. Backends are raw TCP listeners written in
// the tests, so a test can send the gateway exactly the bytes it wants: unsolicited responses,
// late HEAD bodies, out-of-range statuses, 101s nobody asked for, 1xx with hop-by-hop fields.
//
// Each test is named after the class of edge-case bug it guards against (pool mix-up,
// quadratic Connection handling, h2c smuggling, broken request bodies, slow clients, framing
// ambiguity, 1xx relaying, trailers, sniffing, status range, paths, header aliasing, admin
// exposure, limits, config bombs) and asserts the behaviour the gateway must have.
//
// Run it with `go test -race ./conformance/`; ./scripts/test.sh runs it with everything else.
// It needs only loopback networking and the Go toolchain that runs the tests.
package conformance
