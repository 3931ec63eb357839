package proxy

import (
	"fmt"
	"testing"
)

func TestTableMatch(t *testing.T) {
	routes := []*Route{
		{Name: "root", Prefix: "/"},
		{Name: "api", Prefix: "/api"},
		{Name: "users", Prefix: "/api/users"},
		{Name: "deep", Prefix: "/a/b/c"},
		{Name: "host-api", Prefix: "/api", Host: "admin.example.com"},
		{Name: "host-root", Prefix: "/", Host: "shop.example.com"},
	}
	tbl := NewTable(routes, nil)
	cases := []struct {
		host, path, want string
	}{
		{"x", "/", "root"},
		{"x", "/api", "api"},
		{"x", "/api/", "api"},
		{"x", "/api/x", "api"},
		{"x", "/apix", "root"}, // segment-aware: never a partial segment
		{"x", "/api/users", "users"},
		{"x", "/api/users/7", "users"},
		{"x", "/api/users2", "api"},
		{"x", "/a/b", "root"},
		{"x", "/a/b/c/d", "deep"},
		{"admin.example.com", "/api/users", "host-api"}, // host routes first
		{"ADMIN.example.com:8080", "/api", "host-api"},  // case and port ignored
		{"admin.example.com", "/other", "root"},         // falls back to host-less routes
		{"shop.example.com", "/api", "host-root"},
	}
	for _, c := range cases {
		t.Run(c.host+c.path, func(t *testing.T) {
			got := tbl.Match(c.host, c.path)
			if got == nil || got.Name != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %s", c.host, c.path, got, c.want)
			}
		})
	}
	if r := NewTable([]*Route{{Name: "api", Prefix: "/api"}}, nil).Match("x", "/other"); r != nil {
		t.Fatalf("no root route: got %s, want nil", r.Name)
	}
}

func TestCleanPath(t *testing.T) {
	cases := map[string]string{
		"":                      "/",
		"/":                     "/",
		"/api/users":            "/api/users",
		"/api/users/":           "/api/users/",
		"/public/../admin":      "/admin",
		"/public/./x":           "/public/x",
		"//double//slash":       "/double/slash",
		"/../../etc/passwd":     "/etc/passwd",
		"/a/b/..":               "/a",
		"/a/b/../":              "/a/",
		"/a/.hidden/x":          "/a/.hidden/x",
		"/a/..b/x":              "/a/..b/x",
		"relative":              "/relative",
		"/public/%2e%2e/admin":  "/public/%2e%2e/admin", // already decoded by net/http before us
		"/public/..%2fadmin/x/": "/public/..%2fadmin/x/",
	}
	for in, want := range cases {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMatchAllocsAndScale(t *testing.T) {
	for _, n := range []int{10, 10000} {
		tbl := NewTable(makeRoutes(n), nil)
		allocs := testing.AllocsPerRun(1000, func() {
			if tbl.Match("example.com", "/svc5/users/42/orders") == nil {
				t.Fatal("no match")
			}
		})
		if allocs != 0 {
			t.Fatalf("%d routes: %v allocs per match, want 0", n, allocs)
		}
	}
}

func makeRoutes(n int) []*Route {
	routes := make([]*Route, 0, n+1)
	routes = append(routes, &Route{Name: "root", Prefix: "/"})
	for i := 0; i < n; i++ {
		routes = append(routes, &Route{Name: fmt.Sprint(i), Prefix: fmt.Sprintf("/svc%d/users", i)})
	}
	return routes
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		tbl := NewTable(makeRoutes(n), nil)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tbl.Match("example.com", "/svc5/users/42/orders") == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}
