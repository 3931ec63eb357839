package jwt

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/auth"
)

func TestTokenSources(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	tok := rs.sign(t, validClaims())
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))
	for _, tc := range []struct {
		name   string
		from   string
		edit   func(r *http.Request)
		result auth.Result
	}{
		{"bearer", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, auth.Admitted},
		{"bearer lower case", "header:authorization", func(r *http.Request) { r.Header.Set("Authorization", "bearer  "+tok) }, auth.Admitted},
		{"bearer upper case", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "BEARER "+tok) }, auth.Admitted},
		{"basic on the same header is skipped", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", basic) }, auth.Skipped},
		{"scheme only", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer") }, auth.Invalid},
		{"scheme and spaces", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer   ") }, auth.Invalid},
		{"bearer prefix of another scheme", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearerx "+tok) }, auth.Skipped},
		{"missing", "header:Authorization", func(r *http.Request) {}, auth.Skipped},
		{"raw header", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", tok) }, auth.Admitted},
		{"raw header with Bearer is not a token", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", "Bearer "+tok) }, auth.Invalid},
		{"raw header empty", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", " ") }, auth.Skipped},
		{"query", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "a=1&access_token=" + tok + "&b=2" }, auth.Admitted},
		{"query escaped key", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access%5Ftoken=" + tok }, auth.Admitted},
		{"query missing", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "a=1" }, auth.Skipped},
		{"query empty", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=" }, auth.Skipped},
		{"query bad escape", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=%zz" }, auth.Invalid},
		{"cookie", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "a=1; session="+tok+"; b=2") }, auth.Admitted},
		{"cookie quoted", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", `session="`+tok+`"`) }, auth.Admitted},
		{"cookie on a second line", "cookie:session", func(r *http.Request) { r.Header["Cookie"] = []string{"a=1", "session=" + tok} }, auth.Admitted},
		{"another cookie's name has it as a prefix", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "session="+tok+"; sessionx=1") }, auth.Admitted},
		{"query name once, another parameter ending in it", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok + "&my_access_token=x" }, auth.Admitted},
		{"two Basic lines are refused, as basic refuses them", "header:Authorization", func(r *http.Request) { r.Header["Authorization"] = []string{basic, basic} }, auth.Invalid},
		{"cookie missing", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "sessionx="+tok) }, auth.Skipped},
		{"cookie garbage", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "session=garbage") }, auth.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			cfg.From = tc.from
			m := mustNew(t, cfg, set)
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			tc.edit(r)
			d := m.Authenticate(nil, r, &filter.Request{})
			if d.Result != tc.result {
				t.Fatalf("Authenticate = %+v, want result %d", d, tc.result)
			}
			if d.Result == auth.Skipped && d.Reason != "missing" {
				t.Fatalf("skipped with reason %q", d.Reason)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	tok := rs.sign(t, validClaims())
	for _, tc := range []struct {
		name  string
		from  string
		edit  func(r *http.Request)
		check func(t *testing.T, r *http.Request)
	}{
		{"bearer", "header:Authorization", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) },
			func(t *testing.T, r *http.Request) {
				if _, ok := r.Header["Authorization"]; ok {
					t.Fatal("Authorization kept")
				}
			}},
		{"raw header", "header:X-Token", func(r *http.Request) { r.Header.Set("X-Token", tok); r.Header.Set("X-Other", "1") },
			func(t *testing.T, r *http.Request) {
				if r.Header.Get("X-Token") != "" || r.Header.Get("X-Other") != "1" {
					t.Fatalf("headers after strip: %v", r.Header)
				}
			}},
		{"query", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "z=1&access_token=" + tok + "&a=%20b" },
			func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "z=1&a=%20b" {
					t.Fatalf("RawQuery = %q", r.URL.RawQuery)
				}
			}},
		{"query only parameter", "query:access_token", func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok },
			func(t *testing.T, r *http.Request) {
				if r.URL.RawQuery != "" {
					t.Fatalf("RawQuery = %q", r.URL.RawQuery)
				}
			}},
		{"cookie", "cookie:session", func(r *http.Request) {
			r.Header["Cookie"] = []string{"a=1; session=" + tok + "; b=2", "c=3"}
		},
			func(t *testing.T, r *http.Request) {
				if got := r.Header["Cookie"]; len(got) != 2 || got[0] != "a=1; b=2" || got[1] != "c=3" {
					t.Fatalf("Cookie = %q", got)
				}
			}},
		{"cookie alone on its line", "cookie:session", func(r *http.Request) { r.Header["Cookie"] = []string{"c=3", "session=" + tok} },
			func(t *testing.T, r *http.Request) {
				if got := r.Header["Cookie"]; len(got) != 1 || got[0] != "c=3" {
					t.Fatalf("Cookie = %q", got)
				}
			}},
		{"only cookie", "cookie:session", func(r *http.Request) { r.Header.Set("Cookie", "session="+tok) },
			func(t *testing.T, r *http.Request) {
				if _, ok := r.Header["Cookie"]; ok {
					t.Fatalf("Cookie = %q", r.Header["Cookie"])
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			cfg.From, cfg.Strip = tc.from, true
			m := mustNew(t, cfg, set)
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			tc.edit(r)
			if d := m.Authenticate(nil, r, &filter.Request{}); d.Result != auth.Admitted {
				t.Fatalf("Authenticate = %+v", d)
			}
			tc.check(t, r)
		})
	}
	// Without strip, and when refusing, the request is left alone.
	cfg := testConfig("http://127.0.0.1:1/jwks")
	m := mustNew(t, cfg, set)
	for _, token := range []string{tok, "garbage"} {
		r := bearer(token)
		m.Authenticate(nil, r, &filter.Request{})
		if r.Header.Get("Authorization") != "Bearer "+token {
			t.Fatalf("token %q: Authorization changed to %q", token, r.Header.Get("Authorization"))
		}
	}
	cfg.Strip = true
	m = mustNew(t, cfg, set)
	r := bearer("garbage")
	m.Authenticate(nil, r, &filter.Request{})
	if r.Header.Get("Authorization") == "" {
		t.Fatal("a refused token was stripped")
	}
}

// TestDuplicateTokensRefused: a request carrying its token twice is refused, whichever copy
// is valid, since the gateway verifies one copy and the upstream may read another; the
// refused request is left as it came, strip or not.
func TestDuplicateTokensRefused(t *testing.T) {
	rs := rsaSigner(t)
	set := staticKeySet(t, jwksJSON(t, rs))
	valid := rs.sign(t, validClaims())
	forger := rsaSigner2(t)
	forger.kid = rs.kid // claims the gateway's key, signed with another
	forged := forger.sign(t, with(validClaims(), "sub", "admin"))
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))
	for _, tc := range []struct {
		name string
		from string
		edit func(r *http.Request)
	}{
		{"two bearer lines", "header:Authorization", func(r *http.Request) {
			r.Header["Authorization"] = []string{"Bearer " + valid, "Bearer " + forged}
		}},
		{"two bearer lines, forged first", "header:Authorization", func(r *http.Request) {
			r.Header["Authorization"] = []string{"Bearer " + forged, "Bearer " + valid}
		}},
		{"bearer and basic lines", "header:Authorization", func(r *http.Request) {
			r.Header["Authorization"] = []string{"Bearer " + valid, basic}
		}},
		{"two raw header lines", "header:X-Token", func(r *http.Request) {
			r.Header["X-Token"] = []string{valid, forged}
		}},
		{"raw header line and an empty one", "header:X-Token", func(r *http.Request) {
			r.Header["X-Token"] = []string{valid, ""}
		}},
		{"two query parameters", "query:access_token", func(r *http.Request) {
			r.URL.RawQuery = "access_token=" + valid + "&a=1&access_token=" + forged
		}},
		{"query parameter escaped the second time", "query:access_token", func(r *http.Request) {
			r.URL.RawQuery = "access_token=" + valid + "&access%5Ftoken=" + forged
		}},
		{"empty query parameter, then a token", "query:access_token", func(r *http.Request) {
			r.URL.RawQuery = "access_token=&access_token=" + valid
		}},
		{"two cookies on one line", "cookie:session", func(r *http.Request) {
			r.Header.Set("Cookie", "session="+valid+"; a=1; session="+forged)
		}},
		{"two cookies on two lines", "cookie:session", func(r *http.Request) {
			r.Header["Cookie"] = []string{"session=" + valid, "a=1; session=" + forged}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1/jwks")
			cfg.From, cfg.Strip = tc.from, true
			cfg.ClaimsToHeaders = map[string]string{"sub": "X-User-Id"}
			m := mustNew(t, cfg, set)
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			tc.edit(r)
			before, rawQuery := r.Header.Clone(), r.URL.RawQuery
			d := m.Authenticate(nil, r, &filter.Request{})
			if d.Result != auth.Invalid || d.Reason != "invalid" {
				t.Fatalf("Authenticate = %+v, want invalid", d)
			}
			if !reflect.DeepEqual(before, r.Header) || r.URL.RawQuery != rawQuery {
				t.Fatalf("refused request changed: %v %q -> %v %q", before, rawQuery, r.Header, r.URL.RawQuery)
			}
		})
	}
}
