package config

import (
	"strings"
	"testing"
)

// Every error of the route model's keys, with its exact file:line: path: message.
func TestRouteModelErrors(t *testing.T) {
	t.Setenv("SY_SECRET", "s3")
	const ups = "upstreams: [\"http://h:1\"]"
	route := func(extra string) string {
		return "routes:\n  - prefix: /a\n    " + ups + "\n" + extra
	}
	checkErrors(t, []errorCase{
		// decoding
		{"match headers not a mapping", route("    match: {headers: [X-A]}\n"), []string{
			`routes.yaml:4: routes[0].match.headers: expected a mapping, got a list`}},
		{"duplicate header key", route("    match:\n      headers:\n        X-A: a\n        X-A: b\n"), []string{
			`routes.yaml:7: routes[0].match.headers: duplicate key "X-A" (first at line 6)`}},
		{"null condition", route("    match:\n      headers:\n        X-A:\n"), []string{
			`routes.yaml:6: routes[0].match.headers.X-A: missing value (write "" for an empty one)`}},
		{"non-scalar map key", route("    match:\n      query:\n        ? [a]\n        : b\n"), []string{
			`routes.yaml:6: routes[0].match.query: keys must be plain strings, got a list`}},
		{"condition of the wrong shape", route("    match: {query: {v: [1]}}\n"), []string{
			`routes.yaml:4: routes[0].match.query.v: expected a mapping, got a list`}},
		{"unknown condition key", route("    match: {headers: {X-A: {prefix: a}}}\n"), []string{
			`routes.yaml:4: routes[0].match.headers.X-A: unknown key "prefix"`,
			`routes.yaml:4: routes[0].match.headers.X-A: needs one of exact, present, regex (or a plain value for exact)`}},
		{"header value not a string", route("    headers: {request: {set: {X-A: {b: c}}}}\n"), []string{
			`routes.yaml:4: routes[0].headers.request.set.X-A: expected a string, got a mapping`}},
		{"env in a header value", route("    headers: {request: {set: {X-A: \"${SY_NOPE}\"}}}\n"), []string{
			`routes.yaml:4: routes[0].headers.request.set.X-A: environment variable SY_NOPE is not set (use ${SY_NOPE:-default} for a default)`}},
		{"merge into a map of itself", route("    headers: {request: {set: &s {<<: *s}}}\n"), []string{
			`routes.yaml:4: routes[0].headers.request.set: merge key (<<) includes the mapping it is in`}},

		// match
		{"methods", route("    match:\n      methods: [GET, \"BAD METHOD\", get]\n"), []string{
			`routes.yaml:5: routes[0].match.methods[1]: invalid method "BAD METHOD": want an HTTP token such as GET`,
			`routes.yaml:5: routes[0].match.methods[2]: duplicate method "GET"`}},
		{"empty method list and maps", route("    match: {methods: [], headers: {}, query: {}}\n"), []string{
			`routes.yaml:4: routes[0].match.methods: must not be empty (leave it out to match every method)`,
			`routes.yaml:4: routes[0].match.headers: must not be empty (leave it out for no header condition)`,
			`routes.yaml:4: routes[0].match.query: must not be empty (leave it out for no query condition)`}},
		{"header names", route("    match:\n      headers:\n        \"X A\": a\n        X-Canary: a\n        x-canary: b\n        host: a.example\n"), []string{
			`routes.yaml:6: routes[0].match.headers.X A: invalid header name "X A"`,
			`routes.yaml:8: routes[0].match.headers.x-canary: duplicate header "x-canary": same as "X-Canary" (header names are case-insensitive)`,
			`routes.yaml:9: routes[0].match.headers.host: Host is matched by the route's host: key, not by a header condition`}},
		{"conditions", route("    match:\n      headers:\n        X-A: {exact: a, regex: b}\n        X-B: {}\n        X-C: {present: false}\n        X-D: {regex: \"a(\"}\n        X-E: {regex: \"\"}\n"), []string{
			`routes.yaml:6: routes[0].match.headers.X-A: has exact and regex (want exactly one of exact, present, regex)`,
			`routes.yaml:7: routes[0].match.headers.X-B: needs one of exact, present, regex (or a plain value for exact)`,
			`routes.yaml:8: routes[0].match.headers.X-C.present: must be true when written (leave the condition out to match any request)`,
			`routes.yaml:9: routes[0].match.headers.X-D.regex: invalid regex: missing closing ): ` + "`a(`",
			`routes.yaml:10: routes[0].match.headers.X-E.regex: must not be empty (use present: true for any value)`}},
		{"regex too long", route("    match: {query: {q: {regex: \"" + strings.Repeat("a", MaxRegexBytes+1) + "\"}}}\n"), []string{
			`routes.yaml:4: routes[0].match.query.q.regex: regex longer than 1024 bytes`}},
		{"nested repeats", route("    match: {query: {q: {regex: \"((a{1,100}){1,100}){1,100}\"}}}\n"), []string{
			`routes.yaml:4: routes[0].match.query.q.regex: invalid regex: invalid repeat count: ` + "`{1,100}`"}},
		{"regex program too big", route("    match: {query: {q: {regex: \"[a-z]{1000}[0-9]{1000}[a-f]{1000}[A-Z]{1000}[b-y]{1000}[c-x]{1000}[d-w]{1000}[e-v]{1000}[f-u]{1000}[g-t]{1000}[h-s]{1000}\"}}}\n"), []string{
			`routes.yaml:4: routes[0].match.query.q.regex: regex too complex (compiles to 11002 instructions, at most 10000)`}},
		{"empty query name", route("    match: {query: {\"\": a}}\n"), []string{
			`routes.yaml:4: routes[0].match.query.: empty query parameter name`}},

		// targets
		{"service, upstreams and split", "routes:\n  - prefix: /a\n    service: s\n    " + ups + "\n    split: [{service: t}]\n", []string{
			`routes.yaml:2: routes[0]: has service, upstreams and split (want exactly one of service, upstreams, split)`}},
		{"service and split", "routes:\n  - prefix: /a\n    service: s\n    split: [{service: t}]\n", []string{
			`routes.yaml:2: routes[0]: has both service and split (want exactly one of service, upstreams, split)`}},
		{"empty split", "routes:\n  - prefix: /a\n    split: []\n", []string{
			`routes.yaml:3: routes[0].split: must have at least one branch`}},
		{"split branches", "routes:\n  - prefix: /a\n    split:\n      - {service: a, " + ups + "}\n      - {weight: 1}\n      - {service: \"b c\", weight: -1}\n      - {upstreams: [\"ftp://h\", \"http://h:1\", \"http://H:1/\"]}\n      - {upstreams: [], discovery: etcd}\n", []string{
			`routes.yaml:4: routes[0].split[0]: has both service and upstreams (want exactly one)`,
			`routes.yaml:5: routes[0].split[1]: needs service (a registry name) or upstreams (static URLs)`,
			`routes.yaml:6: routes[0].split[2].service: invalid service name "b c" (non-empty, no "/" or spaces)`,
			`routes.yaml:6: routes[0].split[2].weight: must be between 0 (drains the branch) and 1000000, got -1`,
			`routes.yaml:7: routes[0].split[3].upstreams[0]: URL "ftp://h" must start with http:// or https://`,
			`routes.yaml:7: routes[0].split[3].upstreams[2]: duplicate of upstreams[1] (http://h:1)`,
			`routes.yaml:8: routes[0].split[4].discovery: only for service branches (this branch has static upstreams)`,
			`routes.yaml:8: routes[0].split[4].upstreams: must not be empty`}},
		{"split weight too large", "routes:\n  - prefix: /a\n    split: [{service: a, weight: 1000001}, {service: b, weight: 9223372036854775807}]\n", []string{
			`routes.yaml:3: routes[0].split[0].weight: must be between 0 (drains the branch) and 1000000, got 1000001`,
			`routes.yaml:3: routes[0].split[1].weight: must be between 0 (drains the branch) and 1000000, got 9223372036854775807`}},
		{"split total weight zero", "routes:\n  - prefix: /a\n    split:\n      - {service: a, weight: 0}\n      - {service: b, weight: 0}\n", []string{
			`routes.yaml:3: routes[0].split: total weight is 0: at least one branch needs a positive weight`}},
		{"split branch registries", "discovery: {etcd: {}, consul: {}}\nroutes:\n  - prefix: /a\n    split:\n      - {service: a}\n      - {service: b, discovery: zk}\n      - {service: c, discovery: zookeeper}\n      - {service: d, discovery: etcd, tags: [x], datacenter: dc1}\n      - {upstreams: [\"http://h:1\"], tags: [x]}\n      - {service: e, discovery: consul, tags: [\"\"]}\n", []string{
			`routes.yaml:5: routes[0].split[0]: needs discovery: etcd or consul (several registries are configured)`,
			`routes.yaml:6: routes[0].split[1].discovery: unknown registry "zk" (want etcd, consul, zookeeper)`,
			`routes.yaml:7: routes[0].split[2].discovery: registry "zookeeper" is not configured under discovery:`,
			`routes.yaml:8: routes[0].split[3].tags: only for consul branches (this branch uses etcd)`,
			`routes.yaml:8: routes[0].split[3].datacenter: only for consul branches (this branch uses etcd)`,
			`routes.yaml:9: routes[0].split[4].tags: only for consul branches (this branch uses static upstreams)`,
			`routes.yaml:10: routes[0].split[5].tags[0]: empty tag`}},
		{"no registry for a branch", "discovery: {}\nroutes:\n  - prefix: /a\n    split: [{service: a}]\n", []string{
			`routes.yaml:4: routes[0].split[0]: service branches need a registry, and discovery: configures none`}},
		{"route-level keys with split", "discovery: {consul: {}}\nroutes:\n  - prefix: /a\n    split: [{service: a}]\n    discovery: consul\n    tags: [x]\n    datacenter: dc1\n", []string{
			`routes.yaml:5: routes[0].discovery: not with split (each split branch names its own)`,
			`routes.yaml:6: routes[0].tags: not with split (each split branch names its own)`,
			`routes.yaml:7: routes[0].datacenter: not with split (each split branch names its own)`}},
		{"passing_only without a consul target", "routes:\n  - prefix: /a\n    split: [{service: a}, {" + ups + "}]\n    passing_only: true\n", []string{
			`routes.yaml:4: routes[0].passing_only: only for consul routes (this route uses etcd and static upstreams)`}},
		{"mirror", route("    mirror: {service: m, " + ups + ", percent: 0}\n  - prefix: /b\n    " + ups + "\n    mirror: {percent: 100.5}\n  - prefix: /c\n    " + ups + "\n    mirror: {service: m, discovery: consul}\n"), []string{
			`routes.yaml:4: routes[0].mirror: has both service and upstreams (want exactly one)`,
			`routes.yaml:4: routes[0].mirror.percent: must be above 0 and at most 100 (leave mirror out to mirror nothing), got 0`,
			`routes.yaml:7: routes[1].mirror: needs service (a registry name) or upstreams (static URLs)`,
			`routes.yaml:7: routes[1].mirror.percent: must be above 0 and at most 100 (leave mirror out to mirror nothing), got 100.5`,
			`routes.yaml:10: routes[2].mirror.discovery: registry "consul" is not configured under discovery:`}},
		{"sticky", route("    sticky: {ttl: 1h}\n  - prefix: /b\n    " + ups + "\n    sticky: {cookie: \"a b\", secret: \"${SY_SECRET}\", ttl: -1s}\n  - prefix: /c\n    " + ups + "\n    sticky: {cookie: \"x=y\"}\n"), []string{
			`routes.yaml:4: routes[0].sticky: missing cookie (the cookie's name, e.g. cookie: sy_route)`,
			`routes.yaml:7: routes[1].sticky.ttl: must not be negative, got -1s`,
			`routes.yaml:7: routes[1].sticky.cookie: invalid cookie name "a b": want a token (letters, digits, and !#$%&'*+-.^_` + "`" + `|~; no spaces, "=" or ";")`,
			`routes.yaml:10: routes[2].sticky.cookie: invalid cookie name "x=y": want a token (letters, digits, and !#$%&'*+-.^_` + "`" + `|~; no spaces, "=" or ";")`}},
		{"rewrite", route("    rewrite: {}\n  - prefix: /b\n    " + ups + "\n    strip_prefix: true\n    rewrite: {prefix: /x}\n  - prefix: /c\n    " + ups + "\n    rewrite: {prefix: x/../y, host: \"a b\"}\n  - prefix: /d\n    " + ups + "\n    rewrite: {prefix: /a/../b, host: \"h:0\"}\n  - prefix: /e\n    " + ups + "\n    rewrite: {host: \"*.example.com\"}\n  - prefix: /f\n    " + ups + "\n    rewrite: {host: \"::1\"}\n  - prefix: /g\n    " + ups + "\n    rewrite: {host: \"[h]:80\"}\n"), []string{
			`routes.yaml:4: routes[0].rewrite: needs prefix or host (or leave rewrite out)`,
			`routes.yaml:8: routes[1].rewrite.prefix: not with strip_prefix: true (strip_prefix is rewrite: {prefix: /}; keep one)`,
			`routes.yaml:11: routes[2].rewrite.prefix: must start with "/", got "x/../y"`,
			`routes.yaml:11: routes[2].rewrite.host: invalid host "a b": want host or host:port, e.g. users.internal:8080 ([::1]:8080 for IPv6)`,
			`routes.yaml:14: routes[3].rewrite.prefix: "/a/../b" is not a clean path (want "/b")`,
			`routes.yaml:14: routes[3].rewrite.host: invalid host "h:0": bad port "0"`,
			`routes.yaml:17: routes[4].rewrite.host: invalid host "*.example.com": want host or host:port, e.g. users.internal:8080 ([::1]:8080 for IPv6)`,
			`routes.yaml:20: routes[5].rewrite.host: invalid host "::1": want host or host:port, e.g. users.internal:8080 ([::1]:8080 for IPv6)`,
			`routes.yaml:23: routes[6].rewrite.host: invalid host "[h]:80": want host or host:port, e.g. users.internal:8080 ([::1]:8080 for IPv6)`}},

		// filters
		{"headers", route("    headers:\n      request:\n        set: {X-A: \"a\\r\\nX-Evil: 1\", \"Bad Name\": x, Connection: close, host: h}\n        add: {x-a: b, Te: trailers}\n        remove: [X-B, x-b, Content-Length]\n      response:\n        set: {X-B: \"\\0\"}\n        remove: [X-B]\n"), []string{
			`routes.yaml:6: routes[0].headers.request.set.Bad Name: invalid header name "Bad Name"`,
			`routes.yaml:6: routes[0].headers.request.set.Connection: "Connection" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:6: routes[0].headers.request.set.X-A: invalid value "a\r\nX-Evil: 1": control characters (CR, LF, NUL...) are not allowed`,
			`routes.yaml:6: routes[0].headers.request.set.host: Host cannot be edited here (use rewrite.host to change the Host sent upstream)`,
			`routes.yaml:7: routes[0].headers.request.add.Te: "Te" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:8: routes[0].headers.request.remove[1]: header "x-b" is already edited at routes[0].headers.request.remove[0] (header names are case-insensitive)`,
			`routes.yaml:8: routes[0].headers.request.remove[2]: "Content-Length" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:10: routes[0].headers.response.set.X-B: header "X-B" is already edited at routes[0].headers.response.remove[0] (header names are case-insensitive)`,
			`routes.yaml:10: routes[0].headers.response.set.X-B: invalid value "\x00": control characters (CR, LF, NUL...) are not allowed`}},
		{"same header set twice in different case", route("    headers: {request: {set: {X-A: a, x-a: b}}}\n"), []string{
			`routes.yaml:4: routes[0].headers.request.set.x-a: header "x-a" is already edited at routes[0].headers.request.set.X-A (header names are case-insensitive)`}},
		{"max body and ip lists", "defaults:\n  max_body_bytes: -1\n  ip_allow: [10.0.0.0/33, \"fe80::1%eth0\", example.com]\n  ip_deny: 10.0.0.1\n" + okRoute, []string{
			`routes.yaml:2: defaults.max_body_bytes: must not be negative (0 = no limit), got -1`,
			`routes.yaml:3: defaults.ip_allow[0]: "10.0.0.0/33" is neither a CIDR (10.0.0.0/8) nor an IP address`,
			`routes.yaml:3: defaults.ip_allow[1]: "fe80::1%eth0": zones (%eth0) are not allowed`,
			`routes.yaml:3: defaults.ip_allow[2]: "example.com" is neither a CIDR (10.0.0.0/8) nor an IP address`,
			`routes.yaml:4: defaults.ip_deny: expected a list, got "10.0.0.1"`}},
		{"cors", route("    cors:\n      allow_origins: [\"*\", \"app.example.com\", \"https://a.example.com/\", \"https://*.*.example.com\", \"https://a:0\", \"h ttp://a\", \"https://a]\", \"https://[fe80::1%25x]\"]\n      allow_methods: [GET, \"P T\"]\n      allow_headers: [\"X A\"]\n      expose_headers: [\"a:b\"]\n      allow_credentials: true\n"), []string{
			`routes.yaml:5: routes[0].cors.allow_origins[1]: invalid origin "app.example.com": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[2]: invalid origin "https://a.example.com/": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[3]: invalid origin "https://*.*.example.com": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[4]: invalid origin "https://a:0": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[5]: invalid origin "h ttp://a": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[6]: invalid origin "https://a]": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:5: routes[0].cors.allow_origins[7]: invalid origin "https://[fe80::1%25x]": want "*" or scheme://host[:port] (e.g. https://app.example.com, https://*.example.com), no path`,
			`routes.yaml:6: routes[0].cors.allow_methods[1]: invalid method "P T": want an HTTP token such as GET`,
			`routes.yaml:7: routes[0].cors.allow_headers[0]: invalid header name "X A"`,
			`routes.yaml:8: routes[0].cors.expose_headers[0]: invalid header name "a:b"`,
			`routes.yaml:9: routes[0].cors.allow_credentials: allow_credentials cannot go with the "*" origin (browsers refuse credentials for any origin): list the origins`}},
		{"cors without origins", route("    cors: {max_age: 1m}\n  - prefix: /b\n    " + ups + "\n    cors: {allow_origins: [], allow_methods: []}\n"), []string{
			`routes.yaml:4: routes[0].cors: missing allow_origins (e.g. allow_origins: [https://app.example.com])`,
			`routes.yaml:7: routes[1].cors.allow_origins: must not be empty (list the origins, or "*" for any)`,
			`routes.yaml:7: routes[1].cors.allow_methods: must not be empty (leave it out for GET, HEAD, POST)`}},
		{"credentials with an inherited wildcard origin", "defaults:\n  cors: {enabled: false, allow_origins: [\"*\"]}\nroutes:\n  - prefix: /a\n    " + ups + "\n    cors: {allow_credentials: true}\n", []string{
			`routes.yaml:6: routes[0].cors.allow_credentials: allow_credentials cannot go with the "*" origin (browsers refuse credentials for any origin): list the origins`}},
		{"credentials with a subdomain wildcard", route("    cors: {allow_origins: [https://app.example.com, \"https://*.example.com\"], allow_credentials: true}\n"), []string{
			`routes.yaml:4: routes[0].cors.allow_credentials: allow_credentials cannot go with a wildcard origin ("https://*.example.com"): list the origins`}},
		{"gateway-written request headers", route("    headers: {request: {set: {X-Forwarded-For: 1.2.3.4, X-Request-Id: a}, remove: [Proxy-Authorization]}, response: {set: {X-Request-Id: b}}}\n"), []string{
			`routes.yaml:4: routes[0].headers.request.remove[0]: "Proxy-Authorization" is a hop-by-hop or framing header the gateway manages; it cannot be edited`,
			`routes.yaml:4: routes[0].headers.request.set.X-Forwarded-For: "X-Forwarded-For" is written by the gateway after the filters (forwarding fields, request ID); an edit would be overwritten`,
			`routes.yaml:4: routes[0].headers.request.set.X-Request-Id: "X-Request-Id" is written by the gateway after the filters (forwarding fields, request ID); an edit would be overwritten`}},
		{"compress", "defaults:\n  compress:\n    min_bytes: -1\n    types: [text, \"*/*\", \"text/html; charset=utf-8\", \"a/b/c\", \"text/\"]\n" + okRoute + "    compress: {types: []}\n", []string{
			`routes.yaml:3: defaults.compress.min_bytes: must not be negative (0 compresses every size), got -1`,
			`routes.yaml:4: defaults.compress.types[0]: invalid media type "text": want type/subtype or type/*, e.g. text/html, text/*`,
			`routes.yaml:4: defaults.compress.types[1]: invalid media type "*/*": want type/subtype or type/*, e.g. text/html, text/*`,
			`routes.yaml:4: defaults.compress.types[2]: invalid media type "text/html; charset=utf-8": want type/subtype or type/*, e.g. text/html, text/*`,
			`routes.yaml:4: defaults.compress.types[3]: invalid media type "a/b/c": want type/subtype or type/*, e.g. text/html, text/*`,
			`routes.yaml:4: defaults.compress.types[4]: invalid media type "text/": want type/subtype or type/*, e.g. text/html, text/*`,
			`routes.yaml:8: routes[0].compress.types: must not be empty (leave it out for the default list, or write enabled: false)`}},
	})
}
