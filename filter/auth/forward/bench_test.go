package forward

import (
	"bytes"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter/auth"
)

// cannedService answers every request on its keep-alive connections with answer, without
// allocating per request, so a benchmark's allocs/op are the mechanism's and net/http's
// client side alone.
func cannedService(tb testing.TB, answer string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() { serveCanned(conn, []byte(answer)) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/check"
}

// serveCanned writes answer once per request head (bodiless GETs) read from conn.
func serveCanned(conn net.Conn, answer []byte) {
	defer conn.Close()
	buf := make([]byte, 16<<10)
	n := 0
	for {
		read, err := conn.Read(buf[n:])
		if err != nil {
			return
		}
		n += read
		for {
			end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			if _, err := conn.Write(answer); err != nil {
				return
			}
			n = copy(buf, buf[end+4:n])
		}
		if n == len(buf) {
			return // a head this big is not a subrequest
		}
	}
}

// BenchmarkAdmit is the success path: a subrequest to a loopback service answering 200 with
// an identity, and the identity copied into the forwarded request.
func BenchmarkAdmit(b *testing.B) {
	service := cannedService(b, "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nContent-Length: 0\r\n\r\n")
	m := newMechanism(b, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
		RequestHeaders: []string{"Authorization", "Cookie"}, ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"})
	r, q := clientRequest("/api/orders?page=2")
	w := &untouched{}
	b.ReportAllocs()
	for b.Loop() {
		if d := m.Authenticate(w, r, q); d.Result != auth.Admitted || d.Identity != "alice" {
			b.Fatalf("decision %+v", d)
		}
	}
}

// BenchmarkAdmitParallel is the success path from concurrent requests (a pool of
// connections to the service).
func BenchmarkAdmitParallel(b *testing.B) {
	service := cannedService(b, "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nContent-Length: 0\r\n\r\n")
	m := newMechanism(b, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second,
		RequestHeaders: []string{"Authorization", "Cookie"}, ResponseHeaders: []string{"X-User-Id"}, IdentityHeader: "X-User-Id"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, q := clientRequest("/api/orders?page=2")
		w := &untouched{}
		for pb.Next() {
			if d := m.Authenticate(w, r, q); d.Result != auth.Admitted {
				b.Errorf("decision %+v", d)
				return
			}
		}
	})
}

// BenchmarkDeny is the relay path: a 401 with a challenge and a small body.
func BenchmarkDeny(b *testing.B) {
	service := cannedService(b, "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"error\":\"login\"}")
	m := newMechanism(b, &config.ForwardAuth{URL: service, Timeout: 10 * time.Second})
	r, q := clientRequest("/api/orders")
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		if d := m.Authenticate(w, r, q); d.Result != auth.Answered {
			b.Fatalf("decision %+v", d)
		}
	}
}

// discardWriter is a ResponseWriter that keeps its header map and drops the rest.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
