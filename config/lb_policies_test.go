package config

import (
	"slices"
	"testing"
)

// TestEveryLBPolicyParses: each policy name the validator lists is accepted in a route and
// in defaults, and reaches the route as written.
func TestEveryLBPolicyParses(t *testing.T) {
	for _, policy := range lbPolicies {
		t.Run(policy, func(t *testing.T) {
			c := mustParse(t, "defaults:\n  lb: "+policy+"\nroutes:\n  - prefix: /a\n    service: a\n  - prefix: /b\n    service: b\n    lb: "+policy+"\n")
			for _, r := range c.Routes {
				if r.LB != policy {
					t.Fatalf("route %s: lb %q, want %q", r.Prefix, r.LB, policy)
				}
			}
		})
	}
	for _, want := range []string{LBRoundRobin, LBWeighted, LBLeastConn, LBRandom, LBLeastTime} {
		if !slices.Contains(lbPolicies, want) {
			t.Errorf("lbPolicies %v lacks %q", lbPolicies, want)
		}
	}
}
