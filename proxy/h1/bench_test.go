package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRoundTrip compares this client with a tuned http.Transport on the
// same loopback backend: a small GET whose 64-byte body is read fully.
func BenchmarkRoundTrip(b *testing.B) {
	payload := make([]byte, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		w.Write(payload)
	}))
	defer srv.Close()

	clients := []struct {
		name string
		rt   http.RoundTripper
		done func()
	}{
		{"h1", New(Options{MaxIdleConnsPerHost: 64}), nil},
		{"transport", &http.Transport{MaxIdleConnsPerHost: 64}, nil},
		// One conn per host: parallel requests queue for it, so these
		// measure the cost of waiting and handing the conn over.
		{"h1-one-conn", New(Options{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 1}), nil},
		{"transport-one-conn", &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 1}, nil},
	}
	for _, cl := range clients {
		switch rt := cl.rt.(type) {
		case *Client:
			defer rt.Close()
		case *http.Transport:
			defer rt.CloseIdleConnections()
		}
		b.Run(cl.name, func(b *testing.B) {
			b.Run("sequential", func(b *testing.B) {
				req := mustReq(b, "GET", srv.URL+"/bench", nil)
				buf := make([]byte, 512)
				b.ReportAllocs()
				for b.Loop() {
					if err := roundTripOnce(cl.rt, req, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					req := mustReq(b, "GET", srv.URL+"/bench", nil)
					buf := make([]byte, 512)
					for pb.Next() {
						if err := roundTripOnce(cl.rt, req, buf); err != nil {
							b.Error(err) // Fatal may not be called off the benchmark goroutine
							return
						}
					}
				})
			})
		})
	}
}

func roundTripOnce(rt http.RoundTripper, req *http.Request, buf []byte) error {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n := 0
	for {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if n != 64 {
		return fmt.Errorf("read %d bytes, want 64", n)
	}
	return nil
}

// BenchmarkIdleCheck measures what taking a conn from the pool now costs on
// top of the pool operation: the idle check for unsolicited bytes, on a
// plain TCP conn (one recv with MSG_PEEK) and on a TLS conn (that plus a
// deadline read through crypto/tls).
func BenchmarkIdleCheck(b *testing.B) {
	serverCfg, clientCfg := testTLSConfigs(b)
	clientCfg.ServerName = "127.0.0.1"
	for _, useTLS := range []bool{false, true} {
		b.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil && useTLS {
					tc := tls.Server(c, serverCfg)
					tc.Handshake()
					c = tc
				}
				accepted <- c
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			if useTLS {
				tc := tls.Client(nc, clientCfg)
				if err := tc.Handshake(); err != nil {
					b.Fatal(err)
				}
				nc = tc
			}
			if srv := <-accepted; srv != nil {
				defer srv.Close()
			}
			pc := newPersistConn(&hostPool{}, nc)
			defer pc.close()
			b.ReportAllocs()
			for b.Loop() {
				if !pc.idleClean() {
					b.Fatal("clean conn reported dirty")
				}
			}
		})
	}
}

// BenchmarkHeaderScaling shows that the cost of a message grows linearly
// with its header count and with the tokens of its Connection header: the
// ns/header (ns/token) metric stays flat from 10 to 10000. write covers
// writeHead (validation and wantsClose included); read covers an exchange
// through readOne's framing scan, http.ReadResponse and the body wrapper.
func BenchmarkHeaderScaling(b *testing.B) {
	c := newClient(b, Options{IdleConnTimeout: -1, MaxResponseHeaderBytes: 8 << 20})
	for _, n := range []int{10, 100, 1000, 10000} {
		fields := make(http.Header, n)
		var resp strings.Builder
		resp.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
		for i := range n {
			k := fmt.Sprintf("X-Field-%d", i)
			fields[k] = []string{"some value"}
			fmt.Fprintf(&resp, "%s: some value\r\n", k)
		}
		resp.WriteString("\r\nok")
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = fmt.Sprintf("x-option-%d", i)
		}
		// "close" last, so every token is looked at.
		connection := strings.Join(tokens, ", ") + ", close"
		tokenResp := "HTTP/1.1 200 OK\r\nConnection: " + connection + "\r\nContent-Length: 2\r\n\r\nok"

		cases := []struct {
			name, unit string
			run        func(b *testing.B)
		}{
			{"write/headers", "header", func(b *testing.B) { benchWriteHead(b, fields) }},
			{"write/connection-tokens", "token", func(b *testing.B) {
				benchWriteHead(b, http.Header{"Connection": {connection}})
			}},
			{"read/headers", "header", func(b *testing.B) { benchReadResponse(b, c, resp.String()) }},
			{"read/connection-tokens", "token", func(b *testing.B) { benchReadResponse(b, c, tokenResp) }},
		}
		for _, bc := range cases {
			b.Run(fmt.Sprintf("%s=%d", bc.name, n), func(b *testing.B) {
				b.ReportAllocs()
				bc.run(b)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/"+bc.unit)
			})
		}
	}
}

func benchWriteHead(b *testing.B, h http.Header) {
	req := mustReq(b, "GET", "http://upstream.test/", nil)
	req.Header = h
	bw := bufio.NewWriter(io.Discard)
	for b.Loop() {
		if err := writeHead(bw, req, 0, wantsClose(req)); err != nil {
			b.Fatal(err)
		}
		bw.Flush()
	}
}

func benchReadResponse(b *testing.B, c *Client, resp string) {
	data := []byte(resp)
	req := mustReq(b, "GET", "http://upstream.test/", nil)
	for b.Loop() {
		hp := &hostPool{out: 1}
		mc := &memConn{data: data}
		pc := newPersistConn(hp, mc)
		r, _, err := c.exchange(context.Background(), pc, req, nil, 0)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if !mc.closed {
			pc.close()
		}
	}
}
