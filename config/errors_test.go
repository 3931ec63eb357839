package config

import (
	"fmt"
	"strings"
	"testing"
)

// okRoute is a valid routes: section for cases about other parts of the file.
const okRoute = "routes:\n  - prefix: /a\n    upstreams: [\"http://127.0.0.1:9001\"]\n"

// errorCase is a file and every error line Parse must report for it, in order.
type errorCase struct {
	name string
	yaml string
	want []string
}

func TestParseErrors(t *testing.T) {
	t.Setenv("SY_SET", "x")
	checkErrors(t, []errorCase{
		{"yaml syntax", "listen: \":8080\"\n  admin: x\n", []string{
			"routes.yaml:2: invalid YAML: did not find expected key"}},
		{"yaml unclosed flow", "listen: \":8080\"\nadmin: [a, b\nroutes: []\n", []string{
			"routes.yaml:2: invalid YAML: did not find expected ',' or ']'"}},
		{"yaml syntax later line", okRoute + "  - prefix: /b\n    upstreams: x: y\n", []string{
			"routes.yaml:5: invalid YAML: mapping values are not allowed in this context"}},
		{"yaml bad indentation reports the block", okRoute + "  - prefix: /b\n   upstreams: x\n", []string{
			"routes.yaml:2: invalid YAML: did not find expected '-' indicator"}},
		{"yaml bad token", okRoute + "listen: @x\n", []string{
			"routes.yaml:4: invalid YAML: found character that cannot start any token"}},
		{"yaml unknown anchor", "listen: *nope\n", []string{
			"routes.yaml: invalid YAML: unknown anchor 'nope' referenced"}},
		{"two documents", okRoute + "---\nlisten: x\n", []string{
			"routes.yaml:4: only one YAML document is allowed (found a second one)"}},
		{"not a mapping", "- a\n- b\n", []string{
			`routes.yaml:1: expected a mapping, got a list`}},
		{"no routes", "listen: \":8080\"\n", []string{
			"routes.yaml: routes: at least one route is required"}},
		{"unknown top key with suggestion", "lisen: \":8080\"\n" + okRoute, []string{
			`routes.yaml:1: unknown key "lisen" (did you mean "listen"?)`}},
		{"unknown key without suggestion", "frobnicate: 1\n" + okRoute, []string{
			`routes.yaml:1: unknown key "frobnicate"`}},
		{"unknown route key", "routes:\n  - prefix: /a\n    stripPrefix: true\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:3: routes[0]: unknown key "stripPrefix" (did you mean "strip_prefix"?)`}},
		{"duplicate key", "listen: \":1\"\nlisten: \":2\"\n" + okRoute, []string{
			`routes.yaml:2: duplicate key "listen" (first at line 1)`}},
		{"wrong type list for string", "listen: [a]\n" + okRoute, []string{
			`routes.yaml:1: listen: expected a string, got a list`}},
		{"wrong type scalar for mapping", "server: fast\n" + okRoute, []string{
			`routes.yaml:1: server: expected a mapping, got "fast"`}},
		{"wrong type scalar for list", "trusted_proxies: 10.0.0.0/8\n" + okRoute, []string{
			`routes.yaml:1: trusted_proxies: expected a list, got "10.0.0.0/8"`}},
		{"yaml 1.1 bool", "routes:\n  - prefix: /a\n    strip_prefix: yes\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:3: routes[0].strip_prefix: expected true or false, got "yes"`}},
		{"bad int", "server:\n  max_header_bytes: lots\n" + okRoute, []string{
			`routes.yaml:2: server.max_header_bytes: expected an integer, got "lots"`}},
		{"bad duration", "server:\n  idle_timeout: 30\n" + okRoute, []string{
			`routes.yaml:2: server.idle_timeout: invalid duration "30" (want e.g. 30s, 500ms, 1m30s)`}},
		{"negative duration", "server:\n  shutdown_grace: -5s\n" + okRoute, []string{
			`routes.yaml:2: server.shutdown_grace: must not be negative, got -5s`}},
		{"negative uint", "defaults:\n  breaker: { min_requests: -1 }\n" + okRoute, []string{
			`routes.yaml:2: defaults.breaker.min_requests: must not be negative, got -1`}},
		{"bad float", "defaults:\n  breaker: { failure_ratio: .nan }\n" + okRoute, []string{
			`routes.yaml:2: defaults.breaker.failure_ratio: expected a number, got ".nan"`}},
		{"bad listen", "listen: \"8080\"\n" + okRoute, []string{
			`routes.yaml:1: listen: invalid address "8080": want host:port, e.g. 127.0.0.1:8080`}},
		{"bad admin port", "admin: \"127.0.0.1:99999\"\n" + okRoute, []string{
			`routes.yaml:1: admin: invalid address "127.0.0.1:99999": bad port "99999"`}},
		{"admin same as listen", "listen: \":9000\"\nadmin: \"127.0.0.1:9000\"\n" + okRoute, []string{
			`routes.yaml:2: admin: admin and listen must differ ("127.0.0.1:9000" and ":9000" overlap): the admin API must not be public`}},
		{"listen onto default admin", "listen: \"127.0.0.1:9901\"\n" + okRoute, []string{
			`routes.yaml:1: listen: admin and listen must differ ("127.0.0.1:9901" and "127.0.0.1:9901" overlap): the admin API must not be public`}},
		{"trusted proxy", "trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.300\"]\n" + okRoute, []string{
			`routes.yaml:1: trusted_proxies[1]: "10.0.0.300" is neither a CIDR (10.0.0.0/8) nor an IP address`}},
		{"negative int", "transport:\n  max_conns_per_host: -1\n" + okRoute, []string{
			`routes.yaml:2: transport.max_conns_per_host: must not be negative`}},
		{"tls half pair", "transport:\n  tls: { cert_file: c.pem }\n" + okRoute, []string{
			`routes.yaml:2: transport.tls: cert_file and key_file go together (client certificate)`}},
		{"env unset", "discovery:\n  consul: { token: \"${SY_UNSET_VAR}\" }\n" + okRoute, []string{
			`routes.yaml:2: discovery.consul.token: environment variable SY_UNSET_VAR is not set (use ${SY_UNSET_VAR:-default} for a default)`}},
		{"env bad name", "discovery:\n  consul: { token: \"${1X}\" }\n" + okRoute, []string{
			`routes.yaml:2: discovery.consul.token: invalid variable name "1X" in ${1X}`}},
		{"env unterminated", "discovery:\n  consul: { token: \"${SY_SET\" }\n" + okRoute, []string{
			`routes.yaml:2: discovery.consul.token: unterminated ${ in "${SY_SET"`}},
		{"embedded url", "discovery:\n  embedded: { client_url: \"127.0.0.1:2379\" }\n" + okRoute, []string{
			`routes.yaml:2: discovery.embedded.client_url: URL "127.0.0.1:2379" must start with http:// or https://`}},
		{"embedded same urls", "discovery:\n  embedded:\n    client_url: http://127.0.0.1:2379\n    peer_url: http://127.0.0.1:2379\n" + okRoute, []string{
			`routes.yaml:4: discovery.embedded.peer_url: must differ from client_url`}},
		{"etcd endpoints", "discovery:\n  etcd:\n    endpoints: [\"127.0.0.1\", \"http://:2379\"]\n" + okRoute, []string{
			`routes.yaml:3: discovery.etcd.endpoints[0]: invalid endpoint "127.0.0.1": want host:port, e.g. 127.0.0.1:8080`,
			`routes.yaml:3: discovery.etcd.endpoints[1]: URL "http://:2379" has no host`}},
		{"etcd empty endpoints", "discovery:\n  etcd: { endpoints: [] }\n" + okRoute, []string{
			`routes.yaml:2: discovery.etcd.endpoints: must not be empty`}},
		{"etcd prefix", "discovery:\n  etcd: { prefix: services }\n" + okRoute, []string{
			`routes.yaml:2: discovery.etcd.prefix: must start with "/", got "services"`}},
		{"consul address and scheme", "discovery:\n  consul:\n    address: \":8500\"\n    scheme: ftp\n    wait_time: 11m\n" + okRoute, []string{
			`routes.yaml:3: discovery.consul.address: invalid address ":8500": missing host`,
			`routes.yaml:4: discovery.consul.scheme: unknown scheme "ftp" (want http, https)`,
			`routes.yaml:5: discovery.consul.wait_time: must be positive and at most 10m (Consul's limit), got 11m0s`}},
		{"zookeeper", "discovery:\n  zookeeper:\n    servers: [\"zk1\"]\n    root: services\n    session_timeout: 0s\n" + okRoute, []string{
			`routes.yaml:3: discovery.zookeeper.servers[0]: invalid server "zk1": want host:port, e.g. 127.0.0.1:8080`,
			`routes.yaml:4: discovery.zookeeper.root: must start with "/", got "services"`,
			`routes.yaml:5: discovery.zookeeper.session_timeout: must be positive`}},
		{"unknown lb", "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n    lb: least_con\n", []string{
			`routes.yaml:4: routes[0].lb: unknown policy "least_con" (want round_robin, weighted, least_conn)`}},
		{"defaults lb and timeout", "defaults:\n  lb: random\n  timeout: 0s\n" + okRoute, []string{
			`routes.yaml:2: defaults.lb: unknown policy "random" (want round_robin, weighted, least_conn)`,
			`routes.yaml:3: defaults.timeout: must be positive (leave it out to inherit)`}},
		{"retries range", "defaults:\n  retries: 8\n" + okRoute, []string{
			`routes.yaml:2: defaults.retries: must be between 0 and 7, got 8`}},
		{"retry block", "defaults:\n  retry:\n    on_status: [502, 600]\n    budget_percent: 101\n    min_retry_concurrency: -1\n    max_body_bytes: -1\n" + okRoute, []string{
			`routes.yaml:3: defaults.retry.on_status[1]: HTTP status must be between 100 and 599, got 600`,
			`routes.yaml:4: defaults.retry.budget_percent: must be a percentage between 0 and 100, got 101`,
			`routes.yaml:5: defaults.retry.min_retry_concurrency: must not be negative`,
			`routes.yaml:6: defaults.retry.max_body_bytes: must not be negative`}},
		{"passive health block", "defaults:\n  passive_health:\n    consecutive_failures: 0\n    failure_statuses: [99]\n    ejection_time: 60s\n    max_ejection_time: 30s\n    max_ejected_percent: 150\n    panic_threshold: -1\n" + okRoute, []string{
			`routes.yaml:3: defaults.passive_health.consecutive_failures: must be at least 1, got 0`,
			`routes.yaml:4: defaults.passive_health.failure_statuses[0]: HTTP status must be between 100 and 599, got 99`,
			`routes.yaml:6: defaults.passive_health.max_ejection_time: must not be below ejection_time (1m0s)`,
			`routes.yaml:7: defaults.passive_health.max_ejected_percent: must be a percentage between 0 and 100, got 150`,
			`routes.yaml:8: defaults.passive_health.panic_threshold: must be a percentage between 0 and 100, got -1`}},
		{"breaker block", "defaults:\n  breaker:\n    failure_ratio: 0\n    open_timeout: 0s\n    half_open_requests: 0\n" + okRoute, []string{
			`routes.yaml:3: defaults.breaker.failure_ratio: must be in (0, 1], got 0`,
			`routes.yaml:4: defaults.breaker.open_timeout: must be positive`,
			`routes.yaml:5: defaults.breaker.half_open_requests: must be at least 1`}},
		{"failure ratio above one", "defaults:\n  breaker: { failure_ratio: 1.5 }\n" + okRoute, []string{
			`routes.yaml:2: defaults.breaker.failure_ratio: must be in (0, 1], got 1.5`}},
		{"rate limit block", "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n    rate_limit:\n      rps: 0\n      burst: -1\n      key: \"header:X Api\"\n      max_keys: 0\n      idle_ttl: 0s\n", []string{
			`routes.yaml:5: routes[0].rate_limit.rps: must be positive, got 0`,
			`routes.yaml:6: routes[0].rate_limit.burst: must not be negative, got -1`,
			`routes.yaml:7: routes[0].rate_limit.key: invalid key "header:X Api" (want route, client_ip, identity or header:NAME)`,
			`routes.yaml:8: routes[0].rate_limit.max_keys: must be at least 1, got 0`,
			`routes.yaml:9: routes[0].rate_limit.idle_ttl: must be positive`}},
		{"rate limit key", "defaults:\n  rate_limit: { rps: 5, key: ip }\n" + okRoute, []string{
			`routes.yaml:2: defaults.rate_limit.key: invalid key "ip" (want route, client_ip, identity or header:NAME)`}},
		{"rate limit without rps", "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n    rate_limit: { key: client_ip }\n", []string{
			`routes.yaml:4: routes[0].rate_limit: missing rps (requests per second, > 0)`}},
		{"health check block", "defaults:\n  health_check:\n    path: healthz\n    interval: 0s\n    timeout: 0s\n    healthy_threshold: 0\n    unhealthy_threshold: 0\n    expect_status: [1000]\n" + okRoute, []string{
			`routes.yaml:3: defaults.health_check.path: must start with "/", got "healthz"`,
			`routes.yaml:4: defaults.health_check.interval: must be positive`,
			`routes.yaml:5: defaults.health_check.timeout: must be positive`,
			`routes.yaml:6: defaults.health_check.healthy_threshold: must be at least 1, got 0`,
			`routes.yaml:7: defaults.health_check.unhealthy_threshold: must be at least 1, got 0`,
			`routes.yaml:8: defaults.health_check.expect_status[0]: HTTP status must be between 100 and 599, got 1000`}},
		{"health check without path", "defaults:\n  health_check: { interval: 5s }\n" + okRoute, []string{
			`routes.yaml:2: defaults.health_check: missing path (e.g. path: /healthz)`}},
		{"route without prefix", "routes:\n  - upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:2: routes[0]: missing prefix (e.g. prefix: /api)`}},
		{"route not a mapping", "routes:\n  - /api\n", []string{
			`routes.yaml:2: routes[0]: expected a mapping, got "/api"`}},
		{"prefix without slash", "routes:\n  - prefix: api\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:2: routes[0].prefix: must start with "/", got "api"`}},
		{"prefix not clean", "routes:\n  - prefix: /a/../b\n    upstreams: [\"http://h:1\"]\n  - prefix: //x\n    upstreams: [\"http://h:1\"]\n  - prefix: //\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:2: routes[0].prefix: "/a/../b" is not a clean path (want "/b")`,
			`routes.yaml:4: routes[1].prefix: "//x" is not a clean path (want "/x")`,
			`routes.yaml:6: routes[2].prefix: "//" is not a clean path (want "/")`}},
		{"prefix with query", "routes:\n  - prefix: /a?b\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:2: routes[0].prefix: must be a plain path (no query, fragment or spaces), got "/a?b"`}},
		{"duplicate route after cleaning", "routes:\n  - prefix: /api\n    host: Example.com\n    upstreams: [\"http://h:1\"]\n  - prefix: /api/\n    host: example.com:8080\n    upstreams: [\"http://h:2\"]\n", []string{
			`routes.yaml:5: routes[1].prefix: duplicate route: same host, prefix and match conditions as routes[0] (line 2); routes may share host and prefix only with different conditions`}},
		{"bad wildcard hosts", "routes:\n  - {prefix: /a, host: \"*\", upstreams: [\"http://h:1\"]}\n  - {prefix: /a, host: \"a.*.com\", upstreams: [\"http://h:1\"]}\n  - {prefix: /a, host: \"*.*.com\", upstreams: [\"http://h:1\"]}\n  - {prefix: /a, host: \"*example.com\", upstreams: [\"http://h:1\"]}\n  - {prefix: /a, host: \"*..com\", upstreams: [\"http://h:1\"]}\n", []string{
			`routes.yaml:2: routes[0].host: invalid wildcard host "*": want one leading "*." label before a host name, e.g. "*.example.com"`,
			`routes.yaml:3: routes[1].host: invalid wildcard host "a.*.com": want one leading "*." label before a host name, e.g. "*.example.com"`,
			`routes.yaml:4: routes[2].host: invalid wildcard host "*.*.com": want one leading "*." label before a host name, e.g. "*.example.com"`,
			`routes.yaml:5: routes[3].host: invalid wildcard host "*example.com": want one leading "*." label before a host name, e.g. "*.example.com"`,
			`routes.yaml:6: routes[4].host: invalid wildcard host "*..com": want one leading "*." label before a host name, e.g. "*.example.com"`}},
		{"both service and upstreams", "routes:\n  - prefix: /a\n    service: users\n    upstreams: [\"http://h:1\"]\n", []string{
			`routes.yaml:2: routes[0]: has both service and upstreams (want exactly one of service, upstreams, split)`}},
		{"neither service nor upstreams", "routes:\n  - prefix: /a\n", []string{
			`routes.yaml:2: routes[0]: needs service (a registry name), upstreams (static URLs) or split (weighted branches)`}},
		{"bad service name", "routes:\n  - prefix: /a\n    service: \"a/b\"\n", []string{
			`routes.yaml:3: routes[0].service: invalid service name "a/b" (non-empty, no "/" or spaces)`}},
		{"static upstream urls", "routes:\n  - prefix: /a\n    upstreams:\n      - \"127.0.0.1:9001\"\n      - \"http://h:1/api\"\n      - { url: \"ftp://h:1\" }\n      - \"http://h:1?x=1\"\n      - { weight: 2 }\n      - \"http://h:0\"\n", []string{
			`routes.yaml:4: routes[0].upstreams[0]: URL "127.0.0.1:9001" must start with http:// or https://`,
			`routes.yaml:5: routes[0].upstreams[1]: URL "http://h:1/api" must not have a path (the request path is forwarded as is)`,
			`routes.yaml:6: routes[0].upstreams[2].url: URL "ftp://h:1" must start with http:// or https://`,
			`routes.yaml:7: routes[0].upstreams[3]: URL "http://h:1?x=1" must be only scheme://host[:port]`,
			`routes.yaml:8: routes[0].upstreams[4]: missing url (e.g. http://10.0.0.5:8080)`,
			`routes.yaml:9: routes[0].upstreams[5]: URL "http://h:0" has a bad port`}},
		{"upstream weight and duplicate", "routes:\n  - prefix: /a\n    upstreams:\n      - { url: \"http://H:1\", weight: 0 }\n      - { url: \"http://h:1/\", weight: -2 }\n", []string{
			`routes.yaml:4: routes[0].upstreams[0].weight: must be positive, got 0`,
			`routes.yaml:5: routes[0].upstreams[1].url: duplicate of upstreams[0] (http://h:1)`,
			`routes.yaml:5: routes[0].upstreams[1].weight: must be positive, got -2`}},
		{"empty upstreams", "routes:\n  - prefix: /a\n    upstreams: []\n", []string{
			`routes.yaml:3: routes[0].upstreams: must not be empty`}},
		{"upstream wrong shape", "routes:\n  - prefix: /a\n    upstreams:\n      - [\"http://h:1\"]\n", []string{
			`routes.yaml:4: routes[0].upstreams[0]: expected a mapping, got a list`}},
		{"unknown registry", "routes:\n  - prefix: /a\n    service: users\n    discovery: consol\n", []string{
			`routes.yaml:4: routes[0].discovery: unknown registry "consol" (want etcd, consul, zookeeper)`}},
		{"unconfigured registry", "routes:\n  - prefix: /a\n    service: users\n    discovery: consul\n", []string{
			`routes.yaml:4: routes[0].discovery: registry "consul" is not configured under discovery:`}},
		{"several registries", "discovery:\n  etcd: {}\n  consul: {}\nroutes:\n  - prefix: /a\n    service: users\n", []string{
			`routes.yaml:5: routes[0]: needs discovery: etcd or consul (several registries are configured)`}},
		{"no registry", "discovery: {}\nroutes:\n  - prefix: /a\n    service: users\n", []string{
			`routes.yaml:3: routes[0]: service routes need a registry, and discovery: configures none`}},
		{"discovery on static route", "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n    discovery: etcd\n", []string{
			`routes.yaml:4: routes[0].discovery: only for service routes (this route has static upstreams)`}},
		{"consul fields on etcd route", "routes:\n  - prefix: /a\n    service: users\n    tags: [v2]\n    datacenter: dc1\n    passing_only: false\n", []string{
			`routes.yaml:4: routes[0].tags: only for consul routes (this route uses etcd)`,
			`routes.yaml:5: routes[0].datacenter: only for consul routes (this route uses etcd)`,
			`routes.yaml:6: routes[0].passing_only: only for consul routes (this route uses etcd)`}},
		{"consul fields on static route", "routes:\n  - prefix: /a\n    upstreams: [\"http://h:1\"]\n    tags: [v2]\n", []string{
			`routes.yaml:4: routes[0].tags: only for consul routes (this route uses static upstreams)`}},
		{"empty consul tag", "discovery:\n  consul: {}\nroutes:\n  - prefix: /a\n    service: users\n    tags: [\"\"]\n", []string{
			`routes.yaml:6: routes[0].tags[0]: empty tag`}},
		{"recursive merge", "defaults: &d\n  <<: *d\n" + okRoute, []string{
			`routes.yaml:2: defaults: merge key (<<) includes the mapping it is in`}},
		{"recursive merge fan-out", "defaults: &d\n  <<: [*d, *d]\n" + okRoute, []string{
			`routes.yaml:2: defaults: merge key (<<) includes the mapping it is in`}}, // once: repeats are dropped
		{"alias blow-up", "x: &u [" + strings.Repeat("\"http://h:1\",", 600) + "]\n" +
			"y: &r {prefix: /, upstreams: *u}\nroutes: [" + strings.Repeat("*r,", 600) + "]\n", []string{
			`routes.yaml:1: unknown key "x"`,
			`routes.yaml:1: routes[217].upstreams[215]: too many values (anchors and aliases expand to over 131072)`,
			`routes.yaml:2: unknown key "y"`}},
		{"merge chain too deep", func() string {
			var b strings.Builder
			b.WriteString("x:\n  - &a0 {lb: round_robin}\n")
			for i := 1; i <= 40; i++ {
				fmt.Fprintf(&b, "  - &a%d {<<: *a%d}\n", i, i-1)
			}
			return b.String() + "defaults: {<<: *a40}\n" + okRoute
		}(), []string{
			`routes.yaml:1: unknown key "x"`,
			`routes.yaml:13: defaults: nested too deeply (recursive anchor?)`}},
		{"non-string key", "? [a]\n: 1\n" + okRoute, []string{
			`routes.yaml:1: keys must be plain strings, got a list`}},
	})
}

// checkErrors parses each case's file and compares the whole error output.
func checkErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("routes.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned along with errors")
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			got := strings.Split(errs.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
		})
	}
}
