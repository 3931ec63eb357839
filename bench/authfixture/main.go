// Command authfixture prepares the auth variants of bench/run.sh: it writes an API keys
// file, a bcrypt htpasswd and a signed RS256 JWT (one credential each, valid for an hour)
// into -dir, then serves the JWT's key as a JWKS on -listen until it is stopped.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// The credentials the fixture writes, as bench/run.sh sends them.
const (
	apiKey   = "bench-api-key"
	user     = "bench"
	password = "bench-password"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9130", "address to serve the JWKS on")
	dir := flag.String("dir", ".", "directory to write keys.yaml, htpasswd and token into")
	flag.Parse()

	sum := sha256.Sum256([]byte(apiKey))
	write(*dir, "keys.yaml", "keys:\n  - { name: bench, sha256: "+hex.EncodeToString(sum[:])+" }\n")
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		log.Fatal(err)
	}
	write(*dir, "htpasswd", user+":"+string(hash)+"\n")
	write(*dir, "basic", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	write(*dir, "apikey", apiKey)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "bench", "aud": "bench", "sub": "bench-user", "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "bench-1"
	signed, err := tok.SignedString(key)
	if err != nil {
		log.Fatal(err)
	}
	write(*dir, "token", "Bearer "+signed)
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "bench-1", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(jwks)
		})}
	log.Fatal(srv.ListenAndServe())
}

func write(dir, name, content string) {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		log.Fatal(err)
	}
}
