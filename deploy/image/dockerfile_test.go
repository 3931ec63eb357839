// Package image_test checks the repository's Dockerfile and the image's default config
// without a container runtime: the invariants issue 14 asks of the image (a static binary
// from a pinned Go builder, a scratch final stage named "final" that scripts/build-image.sh
// can build from the host, a non-root user, exposed ports, OCI labels, no HEALTHCHECK) are
// read from the Dockerfile's instructions. Every check has a negative case that breaks a copy
// and expects that check to fail. scripts/build-image.sh builds and inspects the real image.
package image_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// The repository root, from this package's directory.
const root = "../.."

const (
	nonRoot       = "65532:65532"
	publicPort    = "8080"
	adminPort     = "9901"
	defaultConfig = "/etc/switchyard/routes.yaml"
	configSource  = "deploy/image/routes.yaml"
	mainPackage   = "./cmd/switchyard"
	binary        = "/switchyard"
	// buildStage is what scripts/build-image.sh replaces (--build-context build=DIR) and
	// finalStage what it builds (--target final).
	buildStage = "build"
	finalStage = "final"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int      // where it starts
	cmd   string   // upper case: FROM, RUN, COPY...
	flags []string // leading --name=value options
	args  string   // the rest
}

// flag returns the value of --name=value, or "" and false.
func (in instruction) flag(name string) (string, bool) {
	for _, f := range in.flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (in instruction) String() string { return fmt.Sprintf("line %d: %s", in.line, in.cmd) }

type stage struct {
	name, from string
	line       int
	body       []instruction // after FROM
}

// dockerfile is a parsed Dockerfile: the instructions before the first FROM (global ARGs)
// and the stages.
type dockerfile struct {
	global []instruction
	stages []stage
}

func (d *dockerfile) stage(name string) *stage {
	for i := range d.stages {
		if d.stages[i].name == name {
			return &d.stages[i]
		}
	}
	return nil
}

// parseDockerfile reads the instruction structure: comments and blank lines dropped,
// backslash continuations joined, leading --flags split off.
func parseDockerfile(text string) (*dockerfile, error) {
	var ins []instruction
	var cur *instruction
	for i, raw := range strings.Split(text, "\n") {
		t := strings.TrimSpace(raw)
		if t == "" || strings.HasPrefix(t, "#") {
			continue // also inside a continuation, as Docker does
		}
		cont := strings.HasSuffix(t, "\\")
		t = strings.TrimSuffix(t, "\\")
		if cur == nil {
			cmd, rest, _ := strings.Cut(t, " ")
			ins = append(ins, instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: rest})
			cur = &ins[len(ins)-1]
		} else {
			cur.args += " " + t
		}
		if !cont {
			cur = nil
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%v: the last line continues with \\", *cur)
	}
	d := &dockerfile{}
	for _, in := range ins {
		in.args = strings.TrimSpace(in.args)
		for strings.HasPrefix(in.args, "--") {
			f, rest, _ := strings.Cut(in.args, " ")
			in.flags = append(in.flags, f)
			in.args = strings.TrimSpace(rest)
		}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0], line: in.line}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			} else if len(f) != 1 {
				return nil, fmt.Errorf("%v: want FROM IMAGE [AS NAME], got %q", in, in.args)
			}
			d.stages = append(d.stages, s)
			continue
		}
		if len(d.stages) == 0 {
			d.global = append(d.global, in)
			continue
		}
		s := &d.stages[len(d.stages)-1]
		s.body = append(s.body, in)
	}
	return d, nil
}

// repo is what the checks read besides the Dockerfile, replaceable by the negative cases.
type repo struct {
	dockerfile  string
	goMod       string              // go.mod
	mainVars    map[string]string   // package-level var name -> type in the main package
	exists      func(string) bool   // a file in the build context
	routesYAML  []byte              // deploy/image/routes.yaml
	dataDirFrom func(string) string // config.DefaultDataDir for an XDG_STATE_HOME value
}

func readRepo(t *testing.T) repo {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return repo{
		dockerfile: read("Dockerfile"),
		goMod:      read("go.mod"),
		mainVars:   packageVars(t, filepath.Join(root, mainPackage)),
		exists: func(p string) bool {
			fi, err := os.Stat(filepath.Join(root, p))
			return err == nil && fi.Mode().IsRegular()
		},
		routesYAML: []byte(read(configSource)),
		dataDirFrom: func(xdg string) (dir string) {
			withEnv(map[string]string{"XDG_STATE_HOME": xdg}, func() { dir = config.DefaultDataDir() })
			return dir
		},
	}
}

// packageVars lists the package-level variables of the non-test files in dir with their
// type as written.
func packageVars(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range af.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for _, n := range vs.Names {
					vars[n.Name] = typ
				}
			}
		}
	}
	return vars
}

// check runs every check and returns what is wrong.
func check(r repo) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	d, err := parseDockerfile(r.dockerfile)
	if err != nil {
		return []error{err}
	}
	for _, s := range d.stages {
		for _, in := range s.body {
			if in.cmd == "HEALTHCHECK" {
				bad("%v: no HEALTHCHECK: probes belong to the orchestrator", in)
			}
		}
	}
	build, final := d.stage(buildStage), d.stage(finalStage)
	if build == nil {
		bad("no stage named %q (scripts/build-image.sh replaces it)", buildStage)
	} else {
		checkBuildStage(r, build, bad)
	}
	if final == nil {
		bad("no stage named %q (scripts/build-image.sh builds --target %s)", finalStage, finalStage)
		return errs
	}
	if last := d.stages[len(d.stages)-1]; last.name != finalStage {
		bad("the last stage is %q, want %q: `docker build .` must produce the final image", last.name, finalStage)
	}
	checkFinalStage(r, final, bad)
	return errs
}

var pinnedGo = regexp.MustCompile(`^(?:docker\.io/(?:library/)?)?golang:(\d+)\.(\d+)\.(\d+)(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`)

func checkBuildStage(r repo, s *stage, bad func(string, ...any)) {
	m := pinnedGo.FindStringSubmatch(s.from)
	if m == nil {
		bad("stage %s: FROM %q: want the official Go image pinned to a full version (golang:X.Y.Z-...)", s.name, s.from)
	} else if want := goDirective(r.goMod); want != nil {
		have := []int{atoi(m[1]), atoi(m[2]), atoi(m[3])}
		if slices.Compare(have, want) < 0 {
			bad("stage %s: Go %d.%d.%d is older than go.mod's go %d.%d.%d", s.name, have[0], have[1], have[2], want[0], want[1], want[2])
		}
	}
	var goBuild *instruction
	for i, in := range s.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = &s.body[i]
		}
	}
	if goBuild == nil {
		bad("stage %s: no RUN ... go build", s.name)
		return
	}
	mounts := map[string]bool{}
	for _, f := range goBuild.flags {
		if v, ok := strings.CutPrefix(f, "--mount="); ok && strings.Contains(v, "type=cache") {
			for kv := range strings.SplitSeq(v, ",") {
				if t, ok := strings.CutPrefix(kv, "target="); ok {
					mounts[t] = true
				}
			}
		}
	}
	for _, dir := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
		if !mounts[dir] {
			bad("%v: go build without a cache mount at %s", *goBuild, dir)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-o /out/switchyard " + mainPackage} {
		if !strings.Contains(goBuild.args, want) {
			bad("%v: go build without %q", *goBuild, want)
		}
	}
	// The names the linker sets must exist as string variables in package main: -X on a
	// missing variable is silently ignored, and `switchyard version` would say "unknown".
	for _, v := range []string{"version", "commit", "date"} {
		if !strings.Contains(goBuild.args, "-X main."+v+"=") {
			bad("%v: go build does not set main.%s with -ldflags -X", *goBuild, v)
		} else if typ, ok := r.mainVars[v]; !ok || typ != "string" {
			bad("%v: -X main.%s but %s has no package-level string variable %s", *goBuild, v, mainPackage, v)
		}
	}
}

func checkFinalStage(r repo, s *stage, bad func(string, ...any)) {
	if s.from != "scratch" && !strings.HasPrefix(s.from, "gcr.io/distroless/static") {
		bad("stage %s: FROM %s, want scratch (or a distroless static image)", s.name, s.from)
	}
	last := map[string]instruction{}
	args := map[string]bool{}
	env := map[string]string{}
	labels := map[string]string{}
	copies := map[string]instruction{} // destination -> COPY
	var exposed []string
	for _, in := range s.body {
		last[in.cmd] = in
		switch in.cmd {
		case "ARG":
			name, _, _ := strings.Cut(in.args, "=")
			args[name] = true
		case "ENV":
			k, v, _ := strings.Cut(in.args, "=")
			env[k] = strings.Trim(v, `"`)
		case "LABEL":
			for _, kv := range splitQuoted(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				labels[k] = strings.Trim(v, `"`)
			}
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
			}
		case "COPY", "ADD":
			if from, ok := in.flag("from"); ok && from != buildStage {
				bad("%v: --from=%s: the final stage may copy only from %q, the stage CI replaces", in, from, buildStage)
			}
			f := strings.Fields(in.args)
			if len(f) < 2 {
				bad("%v: want SRC... DEST", in)
				continue
			}
			copies[f[len(f)-1]] = in
			if _, ok := in.flag("from"); !ok {
				for _, src := range f[:len(f)-1] {
					if !r.exists(src) {
						bad("%v: %s is not a file in the build context", in, src)
					}
				}
			}
		}
	}

	if u := last["USER"]; u.cmd == "" || u.args != nonRoot {
		bad("stage %s: USER %q, want %s (the non-root user, last)", s.name, u.args, nonRoot)
	}
	slices.Sort(exposed)
	if want := []string{publicPort, adminPort}; !slices.Equal(exposed, want) {
		bad("stage %s: EXPOSE %v, want %v", s.name, exposed, want)
	}
	execForm := func(cmd string, want ...string) {
		in, ok := last[cmd]
		var got []string
		if ok && json.Unmarshal([]byte(in.args), &got) != nil {
			bad("%v: %s must be in exec (JSON) form, got %s", in, cmd, in.args)
			return
		}
		if !slices.Equal(got, want) {
			bad("stage %s: %s %q, want %q", s.name, cmd, got, want)
		}
	}
	execForm("ENTRYPOINT", binary)
	execForm("CMD", "-config", defaultConfig)

	for _, l := range []string{"title", "description", "source", "licenses"} {
		if labels["org.opencontainers.image."+l] == "" {
			bad("stage %s: no label org.opencontainers.image.%s", s.name, l)
		}
	}
	for l, arg := range map[string]string{"version": "VERSION", "revision": "REVISION", "created": "CREATED"} {
		if v := labels["org.opencontainers.image."+l]; v != "${"+arg+"}" {
			bad("stage %s: label org.opencontainers.image.%s is %q, want ${%s} (a build argument)", s.name, l, v, arg)
		}
		if !args[arg] {
			bad("stage %s: no ARG %s (labels read build arguments of their own stage)", s.name, arg)
		}
	}

	for dest, src := range map[string]string{
		binary:                               "/out/switchyard",
		"/etc/ssl/certs/ca-certificates.crt": "/out/ca-certificates.crt",
		defaultConfig:                        configSource,
	} {
		in, ok := copies[dest]
		if !ok || !slices.Contains(strings.Fields(in.args), src) {
			bad("stage %s: no COPY %s %s", s.name, src, dest)
		}
	}
	// The embedded etcd's default data directory must be inside a directory the user owns.
	xdg, ok := env["XDG_STATE_HOME"]
	if !ok {
		bad("stage %s: no ENV XDG_STATE_HOME: the embedded etcd would write under $HOME", s.name)
	} else {
		dataDir := r.dataDirFrom(xdg)
		owned := false
		for dest, in := range copies {
			if own, _ := in.flag("chown"); own == nonRoot && within(dataDir, dest) {
				owned = true
			}
		}
		if !owned {
			bad("stage %s: the embedded etcd's data directory %s (XDG_STATE_HOME=%s) is in no directory copied with --chown=%s", s.name, dataDir, xdg, nonRoot)
		}
	}
	checkDefaultConfig(r.routesYAML, bad)
}

// checkDefaultConfig loads the image's routes.yaml as the image's environment leaves it:
// valid, public on the exposed public port, admin on loopback at the exposed admin port; and
// with SWITCHYARD_ADMIN and SWITCHYARD_ADMIN_EXPOSE set as deploy/image/README.md tells
// orchestrators to.
func checkDefaultConfig(data []byte, bad func(string, ...any)) {
	load := func(env map[string]string) (*config.Config, error) {
		dir, err := os.MkdirTemp("", "image-routes-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "routes.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return nil, err
		}
		var c *config.Config
		withEnv(map[string]string{"SWITCHYARD_ADMIN": env["SWITCHYARD_ADMIN"], "SWITCHYARD_ADMIN_EXPOSE": env["SWITCHYARD_ADMIN_EXPOSE"]},
			func() { c, err = config.Load(p) })
		return c, err
	}
	c, err := load(nil)
	if err != nil {
		bad("%s: %v", configSource, err)
		return
	}
	if _, port, _ := net.SplitHostPort(c.Listen); port != publicPort {
		bad("%s: listen %q, want port %s (EXPOSE)", configSource, c.Listen, publicPort)
	}
	host, port, _ := net.SplitHostPort(c.Admin)
	if ip := net.ParseIP(host); port != adminPort || ip == nil || !ip.IsLoopback() || c.AdminExpose {
		bad("%s: admin %q (admin_expose %v), want a loopback address on port %s by default", configSource, c.Admin, c.AdminExpose, adminPort)
	}
	c, err = load(map[string]string{"SWITCHYARD_ADMIN": "0.0.0.0:" + adminPort, "SWITCHYARD_ADMIN_EXPOSE": "true"})
	if err != nil {
		bad("%s with SWITCHYARD_ADMIN=0.0.0.0:%s SWITCHYARD_ADMIN_EXPOSE=true: %v", configSource, adminPort, err)
	} else if c.Admin != "0.0.0.0:"+adminPort || !c.AdminExpose {
		bad("%s: SWITCHYARD_ADMIN and SWITCHYARD_ADMIN_EXPOSE do not set admin and admin_expose (got %q, %v)", configSource, c.Admin, c.AdminExpose)
	}
}

// withEnv runs f with the environment variables set (an empty value is set as empty) and
// restores them afterwards. The tests here are not parallel.
func withEnv(env map[string]string, f func()) {
	for k, v := range env {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		if had {
			defer os.Setenv(k, old)
		} else {
			defer os.Unsetenv(k)
		}
	}
	f()
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// splitQuoted splits on blanks outside double quotes.
func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteRune(c)
		case (c == ' ' || c == '\t') && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

var goLine = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`)

func goDirective(goMod string) []int {
	m := goLine.FindStringSubmatch(goMod)
	if m == nil {
		return nil
	}
	return []int{atoi(m[1]), atoi(m[2]), atoi(m[3])}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s) // "" (no patch version) is 0
	return n
}

func TestDockerfile(t *testing.T) {
	for _, err := range check(readRepo(t)) {
		t.Error(err)
	}
}

// TestChecksBite breaks one thing in a copy of the files per case and expects the error
// that names it.
func TestChecksBite(t *testing.T) {
	type edit struct{ old, new string }
	cases := []struct {
		name  string
		edits []edit        // applied to the Dockerfile; each old must occur
		mod   func(r *repo) // other changes
		want  string        // a substring of one error
	}{
		{name: "final stage not scratch", edits: []edit{{"FROM scratch AS final", "FROM debian:bookworm-slim AS final"}}, want: "want scratch"},
		{name: "final stage renamed", edits: []edit{{"AS final", "AS release"}}, want: `no stage named "final"`},
		{name: "final stage not last", mod: func(r *repo) { r.dockerfile += "FROM scratch AS debug\nCOPY --from=build /out/switchyard /\n" }, want: "the last stage"},
		{name: "build stage renamed", edits: []edit{{"AS build", "AS builder"}, {"--from=build", "--from=builder"}}, want: `no stage named "build"`},
		{name: "root user", edits: []edit{{"USER 65532:65532", "USER root"}}, want: "USER"},
		{name: "no user", edits: []edit{{"USER 65532:65532\n", ""}}, want: "USER"},
		{name: "user only", edits: []edit{{"USER 65532:65532", "USER 65532"}}, want: "USER"},
		{name: "healthcheck", edits: []edit{{"EXPOSE 8080 9901", "EXPOSE 8080 9901\nHEALTHCHECK CMD [\"/switchyard\", \"version\"]"}}, want: "no HEALTHCHECK"},
		{name: "admin port not exposed", edits: []edit{{"EXPOSE 8080 9901", "EXPOSE 8080"}}, want: "EXPOSE"},
		{name: "extra port", edits: []edit{{"EXPOSE 8080 9901", "EXPOSE 8080 9901 2379"}}, want: "EXPOSE"},
		{name: "entrypoint path", edits: []edit{{`ENTRYPOINT ["/switchyard"]`, `ENTRYPOINT ["/bin/switchyard"]`}}, want: "ENTRYPOINT"},
		{name: "entrypoint shell form", edits: []edit{{`ENTRYPOINT ["/switchyard"]`, `ENTRYPOINT /switchyard`}}, want: "exec (JSON) form"},
		{name: "cmd config", edits: []edit{{`CMD ["-config", "/etc/switchyard/routes.yaml"]`, `CMD ["-config", "/routes.yaml"]`}}, want: "CMD"},
		{name: "licenses label missing", edits: []edit{{`org.opencontainers.image.licenses="NOASSERTION" \`, `\`}}, want: "org.opencontainers.image.licenses"},
		{name: "version label fixed", edits: []edit{{`image.version="${VERSION}"`, `image.version="0.2.0"`}}, want: "org.opencontainers.image.version"},
		{name: "created arg not in final stage", edits: []edit{{"FROM scratch AS final\nARG VERSION=dev\nARG REVISION=\nARG CREATED=", "FROM scratch AS final\nARG VERSION=dev\nARG REVISION="}}, want: "no ARG CREATED"},
		{name: "builder unpinned", edits: []edit{{"golang:1.26.8-bookworm", "golang:bookworm"}}, want: "pinned"},
		{name: "builder minor only", edits: []edit{{"golang:1.26.8-bookworm", "golang:1.26-bookworm"}}, want: "pinned"},
		{name: "builder older than go.mod", edits: []edit{{"golang:1.26.8-bookworm", "golang:1.25.9-bookworm"}}, want: "older than go.mod"},
		{name: "cgo", edits: []edit{{"CGO_ENABLED=0 ", ""}}, want: "CGO_ENABLED=0"},
		{name: "no trimpath", edits: []edit{{"go build -trimpath", "go build"}}, want: "-trimpath"},
		{name: "old main package", edits: []edit{{"./cmd/switchyard", "./cmd/gateway"}}, want: "go build without"},
		{name: "no module cache", edits: []edit{{"--mount=type=cache,target=/go/pkg/mod \\\n    --mount", "--mount"}}, want: "cache mount at /go/pkg/mod"},
		{name: "no build cache", edits: []edit{{"--mount=type=cache,target=/root/.cache/go-build", "--mount=type=tmpfs,target=/root/.cache/go-build"}}, want: "cache mount at /root/.cache/go-build"},
		{name: "commit not set", edits: []edit{{"-X main.commit=", "-X main.gitCommit="}}, want: "does not set main.commit"},
		{name: "date variable gone", mod: func(r *repo) { delete(r.mainVars, "date") }, want: "no package-level string variable date"},
		{name: "copy from an image", edits: []edit{{"COPY --from=build /out/ca-certificates.crt", "COPY --from=debian:bookworm /etc/ssl/certs/ca-certificates.crt"}}, want: "may copy only from"},
		{name: "no CA bundle", edits: []edit{{"COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n", ""}}, want: "ca-certificates.crt"},
		{name: "config source missing", mod: func(r *repo) {
			exists := r.exists
			r.exists = func(p string) bool { return p != configSource && exists(p) }
		}, want: "not a file in the build context"},
		{name: "state dir not owned", edits: []edit{{"--chown=65532:65532 ", ""}}, want: "data directory"},
		{name: "state dir elsewhere", edits: []edit{{"ENV XDG_STATE_HOME=/var/lib", "ENV XDG_STATE_HOME=/data"}}, want: "data directory"},
		{name: "no XDG_STATE_HOME", edits: []edit{{"ENV XDG_STATE_HOME=/var/lib\n", ""}}, want: "XDG_STATE_HOME"},
		{name: "config invalid", mod: func(r *repo) { r.routesYAML = []byte("listen: \":8080\"\nroutes: []\n") }, want: "at least one route"},
		{name: "config admin exposed by default", mod: func(r *repo) {
			r.routesYAML = []byte(strings.Replace(string(r.routesYAML), "${SWITCHYARD_ADMIN_EXPOSE:-false}", "${SWITCHYARD_ADMIN_EXPOSE:-true}", 1))
		}, want: "want a loopback address"},
		{name: "config admin port", mod: func(r *repo) {
			r.routesYAML = []byte(strings.Replace(string(r.routesYAML), "127.0.0.1:9901", "127.0.0.1:9902", 1))
		}, want: "want a loopback address on port 9901"},
		{name: "config public port", mod: func(r *repo) {
			r.routesYAML = []byte(strings.Replace(string(r.routesYAML), `listen: ":8080"`, `listen: ":80"`, 1))
		}, want: "want port 8080"},
		{name: "config admin not overridable", mod: func(r *repo) {
			r.routesYAML = []byte(strings.Replace(string(r.routesYAML), "${SWITCHYARD_ADMIN:-127.0.0.1:9901}", "127.0.0.1:9901", 1))
		}, want: "do not set admin"},
	}
	base := readRepo(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			for _, e := range tc.edits {
				if !strings.Contains(r.dockerfile, e.old) {
					t.Fatalf("the Dockerfile has no %q: update this case", e.old)
				}
				r.dockerfile = strings.Replace(r.dockerfile, e.old, e.new, 1)
			}
			if tc.mod != nil {
				r.mainVars = maps.Clone(r.mainVars)
				tc.mod(&r)
			}
			errs := check(r)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.want) }) {
				t.Errorf("no error containing %q; got %v", tc.want, errors.Join(errs...))
			}
		})
	}
}

func TestParseDockerfile(t *testing.T) {
	d, err := parseDockerfile("ARG A=1\nFROM x AS one\n# c\nRUN --mount=type=cache,target=/a \\\n  # inside\n\n  echo \\\n  hi\nFROM scratch\nCOPY --from=one --chown=1:2 /a /b\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.global) != 1 || len(d.stages) != 2 || d.stages[0].name != "one" || d.stages[1].name != "" {
		t.Fatalf("structure: %+v", d)
	}
	run := d.stages[0].body[0]
	if run.line != 4 || !slices.Equal(run.flags, []string{"--mount=type=cache,target=/a"}) || strings.Join(strings.Fields(run.args), " ") != "echo hi" {
		t.Errorf("RUN: %+v", run)
	}
	cp := d.stages[1].body[0]
	if f, _ := cp.flag("from"); f != "one" || cp.args != "/a /b" {
		t.Errorf("COPY: %+v", cp)
	}
	if _, err := parseDockerfile("FROM x\nRUN a \\\n"); err == nil {
		t.Error("a trailing continuation was accepted")
	}
	if _, err := parseDockerfile("FROM a b\n"); err == nil {
		t.Error("FROM a b was accepted")
	}
}
