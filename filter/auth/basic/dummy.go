package basic

import (
	"crypto/rand"
	"strconv"

	"golang.org/x/crypto/bcrypt"
)

// dummyHash returns a bcrypt hash of the given cost that no password matches, for unknown
// users to be compared against at the price of a real user.
//
// Generating it at that cost would take as long as a check (seconds at high costs) on
// every config load. It is made instead at the minimum cost and relabelled: a comparison
// runs bcrypt at the cost written in the hash with the salt written in it, so it costs the
// full price, and its 184-bit result matches the stored digest (computed at another cost
// from a random password nobody knows) only by chance, with odds of 2^-184.
func dummyHash(cost int) []byte {
	password := make([]byte, 32)
	_, _ = rand.Read(password) // never fails (crypto/rand, Go 1.24+)
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.MinCost)
	if err != nil {
		// Only a password over 72 bytes fails, and this one has 32.
		panic(err)
	}
	// h is "$2a$04$" followed by the salt and digest; the cost is the two digits at 4.
	c := strconv.Itoa(cost)
	if len(c) == 1 {
		c = "0" + c
	}
	copy(h[4:6], c)
	return h
}
