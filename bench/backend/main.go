// Command backend is the upstream for bench/run.sh: it answers every request with a fixed
// body, so the proxies in front of it are what the benchmark measures.
package main

import (
	"bytes"
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "address to serve on")
	size := flag.Int("size", 64, "response body size in bytes")
	flag.Parse()
	body := bytes.Repeat([]byte("x"), *size)
	clen := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Content-Length"] = []string{clen}
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
