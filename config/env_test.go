package config

import "testing"

func TestExpand(t *testing.T) {
	env := map[string]string{"TOKEN": "abc", "EMPTY": "", "PORT": "8500"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${TOKEN}", want: "abc"},
		{in: "Bearer ${TOKEN}!", want: "Bearer abc!"},
		{in: "${TOKEN}${PORT}", want: "abc8500"},
		{in: "${MISSING:-fallback}", want: "fallback"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${EMPTY}", want: ""},
		{in: "${MISSING:-}", want: ""},
		{in: "${TOKEN:-x}", want: "abc"},
		{in: "${MISSING:-a:-b}", want: "a:-b"},
		{in: "$${TOKEN}", want: "${TOKEN}"},
		{in: "pa$$word", want: "pa$word"},
		{in: "pa$word", want: "pa$word"},
		{in: "cost $", want: "cost $"},
		{in: "${MISSING}", err: "environment variable MISSING is not set (use ${MISSING:-default} for a default)"},
		{in: "${TOKEN", err: `unterminated ${ in "${TOKEN"`},
		{in: "${}", err: `invalid variable name "" in ${}`},
		{in: "${A-B}", err: `invalid variable name "A-B" in ${A-B}`},
		{in: "${:-x}", err: `invalid variable name "" in ${:-x}`},
	}
	for _, tc := range tests {
		got, err := expand(tc.in, lookup)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("expand(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestExpandInFile checks expansion reaches every kind of scalar, not only strings.
func TestExpandInFile(t *testing.T) {
	t.Setenv("SY_PORT", "9000")
	t.Setenv("SY_RPS", "12.5")
	t.Setenv("SY_UP", "http://10.0.0.9:8080")
	t.Setenv("SY_STRIP", "true")
	src := `listen: ":${SY_PORT}"
admin: "127.0.0.1:${SY_ADMIN_PORT:-9999}"
routes:
  - prefix: /a
    upstreams: ["${SY_UP}", {url: "http://b:1", weight: "${SY_W:-4}"}]
    strip_prefix: ${SY_STRIP}
    timeout: ${SY_TIMEOUT:-7s}
    rate_limit: {rps: "${SY_RPS}"}
`
	c := mustParse(t, src)
	r := c.Routes[0]
	if c.Listen != ":9000" || c.Admin != "127.0.0.1:9999" || r.Upstreams[0].URL != "http://10.0.0.9:8080" ||
		r.Upstreams[1].Weight != 4 || !r.StripPrefix || r.Timeout.String() != "7s" || r.RateLimit.RPS != 12.5 {
		t.Errorf("expanded config: listen %q admin %q route %+v", c.Listen, c.Admin, r)
	}
}
