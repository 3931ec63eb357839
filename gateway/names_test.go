package gateway

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// TestRouteNamesAreStable: routes sharing host and prefix get distinct names that do not
// depend on their order in the file, so metric series and rate-limit buckets follow the route.
func TestRouteNamesAreStable(t *testing.T) {
	canaryA := config.Route{Prefix: "/api", Match: &config.Match{Headers: map[string]config.ValueMatch{"X-T": {Exact: "a"}}}}
	canaryB := config.Route{Prefix: "/api", Match: &config.Match{Headers: map[string]config.ValueMatch{"X-T": {Exact: "b"}}}}
	plain := config.Route{Prefix: "/api"}
	hosted := config.Route{Prefix: "/api", Host: "api.example.com"}

	first := routeNames([]config.Route{canaryA, canaryB, plain, hosted})
	swapped := routeNames([]config.Route{hosted, plain, canaryB, canaryA})
	if first[0] != swapped[3] || first[1] != swapped[2] || first[2] != swapped[1] || first[3] != swapped[0] {
		t.Errorf("names moved with the order: %v then %v", first, swapped)
	}
	if first[2] != "/api" || first[3] != "api.example.com/api" {
		t.Errorf("routes without conditions are named %q and %q, want host+prefix", first[2], first[3])
	}
	if !strings.HasPrefix(first[0], "/api#") || first[0] == first[1] {
		t.Errorf("canary names %q and %q: want distinct /api#... names", first[0], first[1])
	}
	sorted := slices.Clone(first)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(first) {
		t.Errorf("duplicate names: %v", first)
	}
}
