package conformance

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// wsUpgrade is a client's WebSocket upgrade request for target.
func wsUpgrade(target string) string {
	return request("GET "+target+" HTTP/1.1", "Host: gw", "Connection: Upgrade", "Upgrade: websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
}

// switching is a backend's 101 to a WebSocket upgrade, with the given Connection and other
// fields.
func switching(fields ...string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" + strings.Join(fields, "\r\n") +
		"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
}

// tunnel is the backend's side of a switched connection: it answers every read with
// "pong:" and the bytes read, until the connection closes or stays silent for readTimeout.
func tunnel(x *exchange) {
	buf := make([]byte, 4096)
	for {
		x.conn.SetReadDeadline(time.Now().Add(readTimeout))
		n, err := x.br.Read(buf)
		if err != nil || x.write("pong:"+string(buf[:n])) != nil {
			return
		}
	}
}

// TestH2CUpgradeSmuggling: an upgrade the route does not allow must not reach the backend.
// h2c in particular never does: a backend that accepted it would hand the client an HTTP/2
// connection that bypasses the gateway's routing and checks for every later request. An
// upgrade the route allows is forwarded, and a real WebSocket still tunnels both ways.
func TestH2CUpgradeSmuggling(t *testing.T) {
	t.Parallel()
	be := newBackend(t, func(x *exchange) bool {
		if strings.EqualFold(x.req.Header.Get("Upgrade"), "websocket") {
			if x.write(switching("Connection: Upgrade")) == nil {
				tunnel(x)
			}
			return false
		}
		return x.write(response("200 OK", "plain")) == nil
	})
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be) +
		route("/foo", "retries: 0, upgrades: [websocket, foo]", be)})

	for _, c := range []struct {
		name        string
		target      string
		fields      []string
		wantUpgrade string // the Upgrade field the backend must receive ("" = none)
	}{
		{"h2c", "/h2c", []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
			"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}, ""},
		{"upgrade not allowed", "/bar", []string{"Connection: Upgrade", "Upgrade: foo"}, ""},
		{"upgrade allowed", "/foo/x", []string{"Connection: Upgrade", "Upgrade: foo"}, "foo"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := dial(t, gw.addr)
			fields := append([]string{"Host: gw", "X-Id: " + c.name}, c.fields...)
			resp, body := cl.mustRoundTrip(t, request("GET "+c.target+" HTTP/1.1", fields...))
			if resp.StatusCode != 200 || string(body) != "plain" {
				t.Errorf("client got %d %q, want the backend's normal 200", resp.StatusCode, body)
			}
			got := be.find("X-Id", c.name)
			if len(got) != 1 {
				t.Fatalf("backend received %d requests, want 1", len(got))
			}
			h := got[0].Header
			if v := h.Get("Upgrade"); v != c.wantUpgrade {
				t.Errorf("backend received Upgrade %q, want %q", v, c.wantUpgrade)
			}
			if v, ok := h["Http2-Settings"]; ok {
				t.Errorf("backend received HTTP2-Settings %q", v)
			}
			tokens := connectionTokens(h)
			if slices.Contains(tokens, "http2-settings") || c.wantUpgrade == "" && slices.Contains(tokens, "upgrade") {
				t.Errorf("backend received Connection tokens %q", tokens)
			}
		})
	}
	t.Run("websocket tunnels", func(t *testing.T) {
		cl := dial(t, gw.addr)
		resp, _ := cl.mustRoundTrip(t, wsUpgrade("/ws"))
		if resp.StatusCode != 101 {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		if err := cl.send("ping"); err != nil {
			t.Fatal(err)
		}
		cl.nc.SetReadDeadline(time.Now().Add(readTimeout))
		buf := make([]byte, len("pong:ping"))
		if _, err := io.ReadFull(cl.br, buf); err != nil || string(buf) != "pong:ping" {
			t.Errorf("through the tunnel: %q %v, want pong:ping", buf, err)
		}
	})
}

// TestUnsolicited101: a 101 answering a request that asked for no upgrade is a broken or
// hostile backend; turning the connection into a tunnel would let it speak raw bytes to
// the client. The client gets 502 and nothing the backend sent after it.
func TestUnsolicited101(t *testing.T) {
	t.Parallel()
	be := newBackend(t, func(x *exchange) bool {
		if x.write(switching("Connection: Upgrade")+"TUNNEL BYTES") == nil {
			x.sleep(time.Second)
		}
		return false
	})
	gw := startGateway(t, gatewaySpec{routes: route("/", "retries: 0", be)})
	cl := dial(t, gw.addr)
	resp, body := cl.mustRoundTrip(t, request("GET /plain HTTP/1.1", "Host: gw"))
	if resp.StatusCode != 502 {
		t.Errorf("client got %d %q, want 502", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "TUNNEL") {
		t.Errorf("tunnel bytes in the response body: %q", body)
	}
	if err := cl.silentFor(500 * time.Millisecond); err != nil {
		t.Errorf("after the response: %v", err)
	}
}
