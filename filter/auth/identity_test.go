package auth

import (
	"strings"
	"testing"
)

func TestIdentityNames(t *testing.T) {
	n := &identityNames{prefix: "jwt:"}
	a := n.get("alice")
	if a != "jwt:alice" || n.get("alice") != a {
		t.Fatalf("get(alice) = %q", a)
	}
	if allocs := testing.AllocsPerRun(100, func() { n.get("alice") }); allocs != 0 {
		t.Errorf("a known identity allocates %v times", allocs)
	}
	long := strings.Repeat("x", maxIdentityToCache+1)
	if n.get(long) != "jwt:"+long || len(*n.names.Load()) != 1 {
		t.Error("a long identity was cached or built wrong")
	}
	for i := range maxIdentities + 10 {
		name := strings.Repeat("y", i%50) + string(rune('a'+i%26)) + strings.Repeat("z", i/26)
		if got := n.get(name); got != "jwt:"+name {
			t.Fatalf("get(%q) = %q", name, got)
		}
	}
	if got := len(*n.names.Load()); got != maxIdentities {
		t.Errorf("cache holds %d names, want the bound %d", got, maxIdentities)
	}
}
