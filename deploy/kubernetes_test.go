package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/config"
)

// ipFamily is the addresses the test gives the Downward API fields the manifests may use:
// every check that loads routes.yaml runs once per family, so an address written for IPv4
// only (${POD_IP}:9901 is "fd00::7:9901" on an IPv6 pod) fails here, not in a crash loop.
type ipFamily struct {
	name          string
	podIP, hostIP string
}

var ipFamilies = []ipFamily{
	{"IPv4", "10.0.0.7", "10.0.0.1"},
	{"IPv6", "fd00::7", "fd00::1"},
}

// fieldRefValues returns the Downward API values for one family.
func (f ipFamily) fieldRefValues() map[string]string {
	return map[string]string{
		"status.podIP":       f.podIP,
		"status.hostIP":      f.hostIP,
		"metadata.name":      "switchyard-5d8f7-abcde",
		"metadata.namespace": "default",
		"spec.nodeName":      "node-1",
	}
}

// kustomization holds the fields of kustomization.yaml these manifests use. Decoding is
// strict, so a field kustomize knows but this test does not is an error too: teach the
// test (the checks below) before using it.
type kustomization struct {
	APIVersion         string        `json:"apiVersion"`
	Kind               string        `json:"kind"`
	Resources          []string      `json:"resources"`
	ConfigMapGenerator []cmGenerator `json:"configMapGenerator"`
	Patches            []patchRef    `json:"patches"`
}

type cmGenerator struct {
	Name     string   `json:"name"`
	Behavior string   `json:"behavior"` // "" (create), create, replace, merge
	Files    []string `json:"files"`
}

type patchRef struct {
	Path string `json:"path"` // a strategic merge patch naming its target by kind and name
}

// kubeKinds are the API types manifests may hold, by apiVersion/kind.
var kubeKinds = map[string]func() any{
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":                  func() any { return &corev1.ServiceAccount{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// manifest is one object of a kustomize build.
type manifest struct {
	source     string // file it came from, and the patches applied to it
	apiVersion string
	kind, name string
	obj        any // one of kubeKinds' types
}

// kubeBuild is what `kustomize build dir` would produce, for the features these manifests
// use: resources (files and base directories), configMapGenerator (create, replace, merge;
// the content-hash suffix is left out, names stay as written) and strategic merge patches.
type kubeBuild struct {
	dir  string
	objs []*manifest
}

func (b *kubeBuild) find(kind, name string) *manifest {
	for _, m := range b.objs {
		if m.kind == kind && m.name == name {
			return m
		}
	}
	return nil
}

// objectsOf returns the build's objects of type T.
func objectsOf[T any](b *kubeBuild) []T {
	var out []T
	for _, m := range b.objs {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// decodeManifests reads every YAML document of a file strictly into its API type.
func decodeManifests(path string) ([]*manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*manifest
	for i, doc := range docSeparator.Split(string(data), -1) {
		js, err := sigsyaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %v", path, i+1, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue // comments only
		}
		m, err := decodeManifest([]byte(doc), path)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no objects", path)
	}
	return out, nil
}

// decodeManifest decodes one object (YAML, or JSON) into its API type; unknown and
// duplicate fields are errors.
func decodeManifest(doc []byte, source string) (*manifest, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	newObj, ok := kubeKinds[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: unexpected kind %q (apiVersion %q)", source, meta.Kind, meta.APIVersion)
	}
	obj := newObj()
	if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %s %q: %v", source, meta.Kind, meta.Metadata.Name, err)
	}
	if meta.Metadata.Name == "" {
		return nil, fmt.Errorf("%s: %s without metadata.name", source, meta.Kind)
	}
	return &manifest{source: source, apiVersion: meta.APIVersion, kind: meta.Kind, name: meta.Metadata.Name, obj: obj}, nil
}

// within reports whether path is dir or below it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// buildKustomization builds dir; visited are the kustomization roots that led here.
// It enforces kustomize's own loading rules: files (resources, generator files, patches)
// in or below the kustomization's directory, and no base directory that contains a
// kustomization on the way to it ("cycle detected"). Every YAML file in dir must be used.
func buildKustomization(dir string, visited []string) (*kubeBuild, problems) {
	var ps problems
	b := &kubeBuild{dir: dir}
	kpath := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(kpath)
	if err != nil {
		ps.add(err)
		return b, ps
	}
	var k kustomization
	if err := sigsyaml.UnmarshalStrict(data, &k); err != nil {
		ps.addf("%s: %v", kpath, err)
		return b, ps
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		ps.addf("%s: apiVersion/kind %s/%s, want kustomize.config.k8s.io/v1beta1/Kustomization", kpath, k.APIVersion, k.Kind)
	}
	used := map[string]bool{kpath: true}
	file := func(what, rel string) (string, bool) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		switch fi, err := os.Stat(p); {
		case !within(dir, p):
			ps.addf("%s: %s %q is not in or below the kustomization's directory (kustomize refuses it)", kpath, what, rel)
		case err != nil:
			ps.addf("%s: %s %q: %v", kpath, what, rel, err)
		case fi.IsDir():
			ps.addf("%s: %s %q is a directory", kpath, what, rel)
		default:
			used[p] = true
			return p, true
		}
		return "", false
	}

	for _, r := range k.Resources {
		p := filepath.Join(dir, filepath.FromSlash(r))
		fi, err := os.Stat(p)
		if err != nil {
			ps.addf("%s: resource %q: %v", kpath, r, err)
			continue
		}
		if fi.IsDir() {
			if slices.ContainsFunc(append(visited, dir), func(v string) bool { return within(p, v) }) {
				ps.addf("%s: resource %q: cycle: base directory %s contains the kustomization %s that uses it (kustomize: cycle detected)", kpath, r, p, dir)
				continue
			}
			base, bps := buildKustomization(p, append(visited, dir))
			ps = append(ps, bps...)
			b.objs = append(b.objs, base.objs...)
			continue
		}
		if p, ok := file("resource", r); ok {
			ms, err := decodeManifests(p)
			ps.add(err)
			b.objs = append(b.objs, ms...)
		}
	}

	for _, g := range k.ConfigMapGenerator {
		cm := &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: g.Name},
			Data:       map[string]string{},
		}
		for _, f := range g.Files {
			key, rel, ok := strings.Cut(f, "=")
			if !ok {
				key, rel = filepath.Base(f), f
			}
			if p, ok := file("configMapGenerator file", rel); ok {
				content, err := os.ReadFile(p)
				ps.add(err)
				cm.Data[key] = string(content)
			}
		}
		existing := b.find("ConfigMap", g.Name)
		src := kpath + " configMapGenerator " + g.Name
		switch g.Behavior {
		case "", "create":
			if existing != nil {
				ps.addf("%s: ConfigMap %q already exists in a base: use behavior replace or merge", src, g.Name)
				continue
			}
			b.objs = append(b.objs, &manifest{source: src, apiVersion: "v1", kind: "ConfigMap", name: g.Name, obj: cm})
		case "replace", "merge":
			if existing == nil {
				ps.addf("%s: behavior %s but no base has a ConfigMap %q", src, g.Behavior, g.Name)
				continue
			}
			if g.Behavior == "merge" {
				for key, v := range existing.obj.(*corev1.ConfigMap).Data {
					if _, ok := cm.Data[key]; !ok {
						cm.Data[key] = v
					}
				}
			}
			existing.obj, existing.source = cm, src
		default:
			ps.addf("%s: unknown behavior %q", src, g.Behavior)
		}
	}

	for _, pr := range k.Patches {
		p, ok := file("patch", pr.Path)
		if !ok {
			continue
		}
		patches, err := decodeManifests(p)
		if err != nil {
			ps.add(err)
			continue
		}
		for _, patch := range patches {
			target := b.find(patch.kind, patch.name)
			if target == nil {
				ps.addf("%s: patch targets %s %q, which its bases do not have", p, patch.kind, patch.name)
				continue
			}
			ps.add(applyPatch(target, p))
		}
	}

	// A YAML file nothing lists is a manifest that kustomize silently leaves out.
	entries, err := os.ReadDir(dir)
	ps.add(err)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) && !used[p] {
			ps.addf("%s: not listed in %s, so kustomize leaves it out", p, kpath)
		}
	}
	return b, ps
}

// applyPatch applies the strategic merge patch in file to target, as kustomize does, and
// decodes the result strictly again.
func applyPatch(target *manifest, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	patch, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	orig, err := json.Marshal(target.obj)
	if err != nil {
		return err
	}
	schema := kubeKinds[target.apiVersion+"/"+target.kind]()
	merged, err := strategicpatch.StrategicMergePatch(orig, patch, schema)
	if err != nil {
		return fmt.Errorf("%s: patching %s %q: %v", file, target.kind, target.name, err)
	}
	m, err := decodeManifest(merged, target.source+" + "+file)
	if err != nil {
		return err
	}
	*target = *m
	return nil
}

// one returns the single object of type T in the build.
func one[T any](b *kubeBuild, ps *problems, kind string) T {
	objs := objectsOf[T](b)
	if len(objs) != 1 {
		ps.addf("%s: want exactly one %s, found %d", b.dir, kind, len(objs))
		var zero T
		return zero
	}
	return objs[0]
}

// containerEnv returns the environment the container starts with, with Downward API and
// Secret values filled in by the test ($(VAR) references expanded as the kubelet does).
// An optional secretKeyRef is left unset: the Secret may not exist.
func containerEnv(c *corev1.Container, fieldRefValues map[string]string) (map[string]string, problems) {
	var ps problems
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(s string) string {
				if s == "$$" {
					return "$"
				}
				if v, ok := env[s[2:len(s)-1]]; ok {
					return v
				}
				return s
			})
		case vf.FieldRef != nil:
			v, ok := fieldRefValues[vf.FieldRef.FieldPath]
			if !ok {
				ps.addf("env %s: fieldRef %q unknown to this test", e.Name, vf.FieldRef.FieldPath)
			}
			env[e.Name] = v
		case vf.SecretKeyRef != nil:
			if vf.SecretKeyRef.Optional == nil || !*vf.SecretKeyRef.Optional {
				env[e.Name] = "secret-" + vf.SecretKeyRef.Key
			}
		case vf.ConfigMapKeyRef != nil:
			if vf.ConfigMapKeyRef.Optional == nil || !*vf.ConfigMapKeyRef.Optional {
				env[e.Name] = "configmap-" + vf.ConfigMapKeyRef.Key
			}
		case vf.ResourceFieldRef != nil:
			env[e.Name] = "1"
		default:
			ps.addf("env %s: valueFrom unknown to this test", e.Name)
		}
	}
	if len(c.EnvFrom) > 0 {
		ps.addf("envFrom is unknown to this test: list the variables")
	}
	return env, ps
}

// resolvePort turns a port (number or container port name) into a container port number.
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// kubeApp is the gateway's objects in one build.
type kubeApp struct {
	dep      *appsv1.Deployment
	svc      *corev1.Service
	pdb      *policyv1.PodDisruptionBudget
	sa       *corev1.ServiceAccount
	np       *networkingv1.NetworkPolicy
	pod      *corev1.PodSpec
	c        *corev1.Container // the gateway, the pod's one container
	replicas int32
}

// findApp picks the one object of each kind out of the build.
func findApp(b *kubeBuild, ps *problems) (*kubeApp, bool) {
	a := &kubeApp{
		dep: one[*appsv1.Deployment](b, ps, "Deployment"),
		svc: one[*corev1.Service](b, ps, "Service"),
		pdb: one[*policyv1.PodDisruptionBudget](b, ps, "PodDisruptionBudget"),
		sa:  one[*corev1.ServiceAccount](b, ps, "ServiceAccount"),
		np:  one[*networkingv1.NetworkPolicy](b, ps, "NetworkPolicy"),
	}
	if a.dep == nil || a.svc == nil || a.pdb == nil || a.sa == nil || a.np == nil {
		return nil, false
	}
	a.pod = &a.dep.Spec.Template.Spec
	if len(a.pod.Containers) != 1 {
		ps.addf("Deployment: %d containers, want 1", len(a.pod.Containers))
		return nil, false
	}
	a.c = &a.pod.Containers[0]
	a.replicas = 1
	if a.dep.Spec.Replicas != nil {
		a.replicas = *a.dep.Spec.Replicas
	}
	return a, true
}

// checkKube checks the invariants of one build (the base or an overlay).
func checkKube(t *testing.T, b *kubeBuild) problems {
	t.Helper()
	var ps problems
	a, ok := findApp(b, &ps)
	if !ok {
		return ps
	}
	checkPlacement(a, &ps)
	checkSecurity(a, &ps)

	// routes.yaml passes the gateway's own validation with the container's environment.
	routes, routesName := mountedRoutes(b, a, &ps)
	if routes == nil {
		return ps
	}
	var cfg *config.Config
	var listenPort, adminPort int
	for _, fam := range ipFamilies {
		fenv, eps := containerEnv(a.c, fam.fieldRefValues())
		ps = append(ps, eps...)
		fcfg, err := parseRoutes(t, routesName, routes, fenv)
		if err != nil {
			ps.addf("routes.yaml does not load with the Deployment's environment on an %s pod (POD_IP=%s): %v", fam.name, fam.podIP, err)
			continue
		}
		_, lp, err := addrPort(fcfg.Listen)
		ps.add(err)
		adminHost, ap, err := addrPort(fcfg.Admin)
		ps.add(err)
		if adminHost != fenv["POD_IP"] && !isWildcard(adminHost) {
			ps.addf("%s: admin %s is not reachable by the kubelet's probes, which dial the pod IP (%s)", routesName, fcfg.Admin, fam.name)
		}
		if cfg == nil {
			cfg, listenPort, adminPort = fcfg, lp, ap
		} else if lp != listenPort || ap != adminPort {
			ps.addf("%s: ports differ between IP families: listen %d/%d, admin %d/%d", routesName, listenPort, lp, adminPort, ap)
		}
	}
	if cfg == nil {
		return ps
	}
	if cfg.Discovery != nil && cfg.Discovery.Embedded != nil && a.replicas > 1 {
		ps.addf("%s: embedded etcd with %d replicas: each would have a registry of its own", routesName, a.replicas)
	}
	checkPorts(a, listenPort, adminPort, &ps)
	checkNetworkPolicy(a, listenPort, adminPort, &ps)

	// Shutdown: the kubelet waits longer than the gateway's drain.
	grace := 30 * time.Second // Kubernetes' default
	if a.pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*a.pod.TerminationGracePeriodSeconds) * time.Second
	}
	if budget := stopBudget(cfg); grace <= budget {
		ps.addf("Deployment: terminationGracePeriodSeconds %s is not longer than drain_delay + shutdown_grace = %s: the kubelet would kill requests still draining", grace, budget)
	}
	return ps
}

// checkPlacement: replicas, label selectors, the disruption budget, spreading and the
// service account.
func checkPlacement(a *kubeApp, ps *problems) {
	if a.replicas < 2 {
		ps.addf("Deployment: %d replicas, want at least 2", a.replicas)
	}
	sel := a.dep.Spec.Selector
	if sel == nil || len(sel.MatchLabels) == 0 {
		ps.addf("Deployment: selector.matchLabels is empty")
		return
	}
	podLabels := labels.Set(a.dep.Spec.Template.Labels)
	selects := func(what string, sel *metav1.LabelSelector) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		switch {
		case err != nil:
			ps.addf("%s: selector: %v", what, err)
		case s.Empty():
			ps.addf("%s: empty selector selects every pod", what)
		case !s.Matches(podLabels):
			ps.addf("%s: selector %s does not match the Deployment's pod labels %v", what, s, podLabels)
		}
	}
	selects("Deployment", sel)
	if !labels.Equals(a.svc.Spec.Selector, sel.MatchLabels) {
		ps.addf("Service: selector %v differs from the Deployment's %v", a.svc.Spec.Selector, sel.MatchLabels)
	}
	selects("Service", &metav1.LabelSelector{MatchLabels: a.svc.Spec.Selector})
	if pdbSel := a.pdb.Spec.Selector; pdbSel == nil || !labels.Equals(pdbSel.MatchLabels, sel.MatchLabels) || len(pdbSel.MatchExpressions) > 0 {
		ps.addf("PodDisruptionBudget: selector %v differs from the Deployment's %v", pdbSel, sel.MatchLabels)
	} else {
		selects("PodDisruptionBudget", pdbSel)
	}
	selects("NetworkPolicy podSelector", &a.np.Spec.PodSelector)

	// The budget keeps one replica and still lets a drain evict one.
	switch m := a.pdb.Spec.MinAvailable; {
	case m == nil || m.Type != intstr.Int:
		ps.addf("PodDisruptionBudget: minAvailable must be a number")
	case m.IntValue() < 1 || int32(m.IntValue()) >= a.replicas:
		ps.addf("PodDisruptionBudget: minAvailable %d must be at least 1 and below the %d replicas (or no node can ever be drained)", m.IntValue(), a.replicas)
	}

	for _, key := range []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"} {
		i := slices.IndexFunc(a.pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool { return c.TopologyKey == key })
		if i < 0 {
			ps.addf("Deployment: no topologySpreadConstraint on %s", key)
			continue
		}
		selects("topologySpreadConstraint "+key, a.pod.TopologySpreadConstraints[i].LabelSelector)
	}

	// No API token: the gateway never calls the Kubernetes API.
	if a.pod.ServiceAccountName != a.sa.Name {
		ps.addf("Deployment: serviceAccountName %q, want %q", a.pod.ServiceAccountName, a.sa.Name)
	}
	if a.sa.AutomountServiceAccountToken == nil || *a.sa.AutomountServiceAccountToken {
		ps.addf("ServiceAccount: automountServiceAccountToken must be false")
	}
	if a.pod.AutomountServiceAccountToken != nil && *a.pod.AutomountServiceAccountToken {
		ps.addf("Deployment: automountServiceAccountToken must not be true")
	}
}

// checkSecurity: the pinned image, the security contexts and resources of the container.
func checkSecurity(a *kubeApp, ps *problems) {
	c := a.c
	ps.add(imagePinned(c.Image))
	psc, csc := a.pod.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if nonRoot := csc.RunAsNonRoot; !isTrue(nonRoot) && !(nonRoot == nil && isTrue(psc.RunAsNonRoot)) {
		ps.addf("container %s: runAsNonRoot must be true", c.Name)
	}
	for _, uid := range []*int64{psc.RunAsUser, csc.RunAsUser} {
		if uid != nil && *uid == 0 {
			ps.addf("container %s: runAsUser 0", c.Name)
		}
	}
	if !isTrue(csc.ReadOnlyRootFilesystem) {
		ps.addf("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		ps.addf("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0 {
		ps.addf("container %s: capabilities must drop ALL and add none", c.Name)
	}
	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		ps.addf("container %s: seccompProfile must be RuntimeDefault", c.Name)
	}
	for _, r := range []struct {
		what string
		list corev1.ResourceList
		name corev1.ResourceName
	}{
		{"requests", c.Resources.Requests, corev1.ResourceCPU},
		{"requests", c.Resources.Requests, corev1.ResourceMemory},
		{"limits", c.Resources.Limits, corev1.ResourceMemory},
	} {
		if q, ok := r.list[r.name]; !ok || q.IsZero() {
			ps.addf("container %s: resources.%s.%s not set", c.Name, r.what, r.name)
		}
	}
}

// mountedRoutes returns the routes.yaml the container's -config names, from the ConfigMap
// mounted as its directory, and a name for it in messages; nil if there is none. A
// ConfigMap mounted with subPath is a problem in itself.
func mountedRoutes(b *kubeBuild, a *kubeApp, ps *problems) ([]byte, string) {
	c := a.c
	configPath, ok := flagValue(c.Args, "config")
	if !ok {
		ps.addf("container %s: no -config argument (the default is routes.yaml in the working directory)", c.Name)
		return nil, ""
	}
	dir, key := filepath.Dir(configPath), filepath.Base(configPath)
	var routes []byte
	var name string
	for _, v := range a.pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name != v.Name {
				continue
			}
			if vm.SubPath != "" || vm.SubPathExpr != "" {
				ps.addf("container %s: ConfigMap volume %s is mounted with subPath: such a mount never sees a ConfigMap update", c.Name, v.Name)
			}
			if filepath.Clean(vm.MountPath) != dir {
				continue
			}
			cm := b.find("ConfigMap", v.ConfigMap.Name)
			if cm == nil {
				ps.addf("volume %s: ConfigMap %q is not in the build", v.Name, v.ConfigMap.Name)
				continue
			}
			data, ok := cm.obj.(*corev1.ConfigMap).Data[key]
			if !ok {
				ps.addf("ConfigMap %q (%s) has no key %q for -config %s", cm.name, cm.source, key, configPath)
				continue
			}
			routes, name = []byte(data), cm.source+": "+key
		}
	}
	if routes == nil {
		ps.addf("container %s: -config %s is not in a mounted ConfigMap", c.Name, configPath)
	}
	return routes, name
}

// checkPorts: routes.yaml's listen and admin ports against the container ports, the probes
// and the Service.
func checkPorts(a *kubeApp, listenPort, adminPort int, ps *problems) {
	c := a.c
	for _, want := range []struct {
		port int
		key  string
	}{{listenPort, "listen"}, {adminPort, "admin"}} {
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return int(p.ContainerPort) == want.port }) {
			ps.addf("container %s: no containerPort %d (routes.yaml %s)", c.Name, want.port, want.key)
		}
	}
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			ps.addf("container %s: %s must be an httpGet", c.Name, pr.what)
			continue
		}
		g := pr.probe.HTTPGet
		if port := resolvePort(g.Port, c.Ports); port != adminPort {
			ps.addf("container %s: %s port %s is %d, not the admin port %d of routes.yaml", c.Name, pr.what, g.Port.String(), port, adminPort)
		}
		if g.Path != pr.path {
			ps.addf("container %s: %s path %q, want %q", c.Name, pr.what, g.Path, pr.path)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			ps.addf("container %s: %s scheme %s: the admin listener is plain HTTP", c.Name, pr.what, g.Scheme)
		}
		if g.Host != "" {
			ps.addf("container %s: %s sets host: the kubelet must dial the pod IP", c.Name, pr.what)
		}
	}
	if len(a.svc.Spec.Ports) == 0 {
		ps.addf("Service: no ports")
	}
	for _, sp := range a.svc.Spec.Ports {
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		if p := resolvePort(target, c.Ports); p != listenPort {
			ps.addf("Service: port %q targets %s (%d), want only the public port %d", sp.Name, target.String(), p, listenPort)
		}
	}
}

// checkNetworkPolicy: the public port open to all, the admin port to no one unrestricted.
func checkNetworkPolicy(a *kubeApp, listenPort, adminPort int, ps *problems) {
	np := a.np
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		ps.addf("NetworkPolicy: policyTypes must include Ingress")
	}
	const everyPort = -1
	publicOpen := false
	for i, rule := range np.Spec.Ingress {
		ports := []int{everyPort} // a rule without ports allows every port
		if len(rule.Ports) > 0 {
			ports = ports[:0]
		}
		for _, p := range rule.Ports {
			if p.Port == nil {
				ports = append(ports, everyPort)
				continue
			}
			ports = append(ports, resolvePort(*p.Port, a.c.Ports))
		}
		if len(rule.From) > 0 {
			continue
		}
		for _, p := range ports {
			if p == adminPort || p == everyPort {
				ps.addf("NetworkPolicy: ingress rule %d opens the admin port %d to everyone", i, adminPort)
			}
			publicOpen = publicOpen || p == listenPort
		}
	}
	if !publicOpen {
		ps.addf("NetworkPolicy: no rule lets everyone reach the public port %d", listenPort)
	}
}

// kustomizeDirs returns the base and every overlay under root.
func kustomizeDirs(t *testing.T, root string) []string {
	t.Helper()
	overlays, err := filepath.Glob(filepath.Join(root, "overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{filepath.Join(root, "base")}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	return dirs
}

// checkKubeDir builds dir and checks the result, with a discovery check by overlay name.
func checkKubeDir(t *testing.T, dir string) problems {
	t.Helper()
	b, ps := buildKustomization(dir, nil)
	if len(ps) > 0 {
		return ps
	}
	return checkKube(t, b)
}

func TestKubernetesManifests(t *testing.T) {
	dirs := kustomizeDirs(t, "kubernetes")
	for _, want := range []string{"base", "consul", "etcd"} {
		if !slices.ContainsFunc(dirs, func(d string) bool { return filepath.Base(d) == want }) {
			t.Errorf("no kustomization %s under kubernetes/", want)
		}
	}
	for _, dir := range dirs {
		t.Run(filepath.ToSlash(dir), func(t *testing.T) {
			if ps := checkKubeDir(t, dir); len(ps) > 0 {
				t.Errorf("%d problems:%s", len(ps), ps)
			}
		})
	}
}

// TestKubernetesOverlaysChangeRegistry: each overlay reads from the registry it is named
// after, and the base from an etcd shared by the replicas.
func TestKubernetesOverlaysChangeRegistry(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want func(*config.Discovery) bool
	}{
		{"kubernetes/base", func(d *config.Discovery) bool { return d.Etcd != nil && d.Embedded == nil && d.Consul == nil }},
		{"kubernetes/overlays/etcd", func(d *config.Discovery) bool { return d.Etcd != nil && d.Etcd.TLS != nil && d.Embedded == nil }},
		{"kubernetes/overlays/consul", func(d *config.Discovery) bool { return d.Consul != nil && d.Etcd == nil }},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			b, ps := buildKustomization(tc.dir, nil)
			if len(ps) > 0 {
				t.Fatalf("build:%s", ps)
			}
			deps := objectsOf[*appsv1.Deployment](b)
			cms := objectsOf[*corev1.ConfigMap](b)
			if len(deps) != 1 || len(cms) != 1 {
				t.Fatalf("%d Deployments, %d ConfigMaps", len(deps), len(cms))
			}
			for _, fam := range ipFamilies {
				env, eps := containerEnv(&deps[0].Spec.Template.Spec.Containers[0], fam.fieldRefValues())
				if len(eps) > 0 {
					t.Fatal(eps)
				}
				data := []byte(cms[0].Data["routes.yaml"])
				cfg, err := parseRoutes(t, tc.dir, data, env)
				if err != nil {
					t.Fatalf("%s: %v", fam.name, err)
				}
				if cfg.Discovery == nil || !tc.want(cfg.Discovery) {
					t.Errorf("%s: discovery %+v is not what %s is for", fam.name, cfg.Discovery, tc.dir)
				}
			}
		})
	}
}

// TestKubernetesChecksBite breaks a copy of the manifests one way at a time and expects the
// checks to say so.
func TestKubernetesChecksBite(t *testing.T) {
	const (
		dep    = "base/deployment.yaml"
		routes = "base/routes.yaml"
	)
	tests := []struct {
		name string
		dir  string // kustomization to build, relative to the copy
		m    []mutation
		want string
	}{
		{"typo in a field", "base", []mutation{{dep, "readinessProbe:", "readinesProbe:"}}, `unknown field "readinesProbe"`},
		{"duplicate field", "base", []mutation{{dep, "      terminationGracePeriodSeconds: 45\n", "      terminationGracePeriodSeconds: 45\n      terminationGracePeriodSeconds: 50\n"}}, "duplicate"},
		{"unknown kind", "base", []mutation{{"base/service.yaml", "kind: Service", "kind: Servce"}}, `unexpected kind "Servce"`},
		{"typo in a patch", "overlays/etcd", []mutation{{"overlays/etcd/deployment-patch.yaml", "secretKeyRef:", "secretKeyRefs:"}}, "unknown field"},
		{"typo in kustomization", "base", []mutation{{"base/kustomization.yaml", "configMapGenerator:", "configMapGenerators:"}}, "unknown field"},
		{"kustomization lists a missing file", "base", []mutation{{"base/kustomization.yaml", "- service.yaml", "- services.yaml"}}, `resource "services.yaml"`},
		{"file not listed", "base", []mutation{{"base/kustomization.yaml", "  - service.yaml\n", ""}}, "not listed in"},
		{"file outside the kustomization", "overlays/consul", []mutation{{"overlays/consul/kustomization.yaml", "- routes.yaml", "- ../../base/routes.yaml"}}, "not in or below"},
		{"overlay base contains the overlay", "overlays/consul", []mutation{{"overlays/consul/kustomization.yaml", "- ../../base", "- ../.."}}, "cycle"},
		{"patch targets nothing", "overlays/consul", []mutation{{"overlays/consul/deployment-patch.yaml", "name: switchyard", "name: switchyard-gw"}}, "which its bases do not have"},
		{"replace of a missing ConfigMap", "overlays/etcd", []mutation{{"overlays/etcd/kustomization.yaml", "- name: switchyard", "- name: gateway"}}, "no base has a ConfigMap"},
		{"readiness on the public port", "base", []mutation{{dep, "path: /readyz\n              port: admin", "path: /readyz\n              port: http"}}, "readinessProbe port http is 8080, not the admin port 9901"},
		{"liveness on readyz", "base", []mutation{{dep, "path: /healthz", "path: /readyz"}}, `livenessProbe path "/readyz"`},
		{"admin port differs from routes.yaml", "base", []mutation{{routes, `"[${POD_IP}]:9901"`, `"[${POD_IP}]:9902"`}}, "not the admin port 9902"},
		{"admin on loopback", "base", []mutation{{routes, `"[${POD_IP}]:9901"`, `"127.0.0.1:9901"`}}, "not reachable by the kubelet"},
		{"admin without brackets fails on IPv6 pods", "base", []mutation{{routes, `"[${POD_IP}]:9901"`, `"${POD_IP}:9901"`}}, `on an IPv6 pod (POD_IP=fd00::7)`},
		{"overlay admin without brackets", "overlays/etcd", []mutation{{"overlays/etcd/routes.yaml", `"[${POD_IP}]:9901"`, `"${POD_IP}:9901"`}}, `invalid address "fd00::7:9901"`},
		{"Consul address without brackets", "overlays/consul", []mutation{{"overlays/consul/deployment-patch.yaml", `"[$(HOST_IP)]:8500"`, `"$(HOST_IP):8500"`}}, `invalid address "fd00::1:8500"`},
		{"listen differs from container port", "base", []mutation{{routes, `listen: ":8080"`, `listen: ":8000"`}}, "no containerPort 8000"},
		{"Service targets admin", "base", []mutation{{"base/service.yaml", "targetPort: http", "targetPort: admin"}}, "want only the public port"},
		{"grace equal to the drain", "base", []mutation{{dep, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 35"}}, "terminationGracePeriodSeconds 35s is not longer than drain_delay + shutdown_grace = 35s"},
		{"grace left to the default", "base", []mutation{{dep, "terminationGracePeriodSeconds: 45", ""}}, "terminationGracePeriodSeconds 30s"},
		{"shutdown_grace raised in routes.yaml only", "base", []mutation{{routes, "shutdown_grace: 30s", "shutdown_grace: 60s"}}, "= 1m5s"},
		{"drain_delay raised in routes.yaml only", "base", []mutation{{routes, "drain_delay: 5s", "drain_delay: 20s"}}, "= 50s"},
		{"drain_delay left to its default", "base", []mutation{{routes, "drain_delay: 5s", ""}, {dep, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 31"}}, "= 35s"},
		{"shutdown_grace raised in an overlay", "overlays/consul", []mutation{{"overlays/consul/routes.yaml", "shutdown_grace: 30s", "shutdown_grace: 40s"}}, "= 45s"},
		{"subPath mount", "base", []mutation{{dep, "mountPath: /etc/switchyard\n", "mountPath: /etc/switchyard\n              subPath: routes.yaml\n"}}, "subPath"},
		{"config outside the ConfigMap", "base", []mutation{{dep, `"-config", "/etc/switchyard/routes.yaml"`, `"-config", "/etc/routes.yaml"`}}, "not in a mounted ConfigMap"},
		{"image latest", "base", []mutation{{dep, "image: ghcr.io/switchyard/switchyard:0.2.0", "image: ghcr.io/switchyard/switchyard:latest"}}, "latest moves"},
		{"image without tag", "base", []mutation{{dep, "image: ghcr.io/switchyard/switchyard:0.2.0", "image: ghcr.io/switchyard/switchyard"}}, "no tag or digest"},
		{"root allowed", "base", []mutation{{dep, "runAsNonRoot: true\n            capabilities", "runAsNonRoot: false\n            capabilities"}}, "runAsNonRoot must be true"},
		{"root user", "base", []mutation{{dep, "runAsUser: 65532", "runAsUser: 0"}}, "runAsUser 0"},
		{"writable root", "base", []mutation{{dep, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"}}, "readOnlyRootFilesystem"},
		{"privilege escalation", "base", []mutation{{dep, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"}}, "allowPrivilegeEscalation"},
		{"capabilities kept", "base", []mutation{{dep, "drop: [ALL]", "drop: [NET_RAW]"}}, "drop ALL"},
		{"no seccomp", "base", []mutation{{dep, "type: RuntimeDefault", "type: Unconfined"}}, "seccompProfile"},
		{"no memory limit", "base", []mutation{{dep, "              memory: 512Mi\n", ""}}, "resources.limits.memory"},
		{"one replica", "base", []mutation{{dep, "replicas: 2", "replicas: 1"}}, "1 replicas"},
		{"no zone spread", "base", []mutation{{dep, "topologyKey: topology.kubernetes.io/zone", "topologyKey: example.com/rack"}}, "topology.kubernetes.io/zone"},
		{"Service selector differs", "base", []mutation{{"base/service.yaml", "component: gateway\n  ports", "component: proxy\n  ports"}}, "Service: selector"},
		{"PDB selector differs", "base", []mutation{{"base/poddisruptionbudget.yaml", "      app.kubernetes.io/component: gateway\n", "      app.kubernetes.io/component: proxy\n"}}, "PodDisruptionBudget: selector"},
		{"PDB blocks drains", "base", []mutation{{"base/poddisruptionbudget.yaml", "minAvailable: 1", "minAvailable: 2"}}, "no node can ever be drained"},
		{"token mounted", "base", []mutation{{"base/serviceaccount.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true"}}, "automountServiceAccountToken must be false"},
		{"admin open to all", "base", []mutation{{"base/networkpolicy.yaml", "    - ports:\n        - port: http", "    - ports:\n        - port: admin"}}, "opens the admin port"},
		{"POD_IP not set", "base", []mutation{{dep, "name: POD_IP", "name: POD_ADDRESS"}}, "POD_IP is not set"},
		{"overlay variable not set", "overlays/consul", []mutation{{"overlays/consul/deployment-patch.yaml", "name: CONSUL_ADDRESS", "name: CONSUL_ADDR"}}, "CONSUL_ADDRESS is not set"},
		{"routes.yaml invalid", "overlays/consul", []mutation{{"overlays/consul/routes.yaml", "wait_time: 5m", "wait_time: 20m"}}, "wait_time"},
		{"routes.yaml typo", "overlays/etcd", []mutation{{"overlays/etcd/routes.yaml", "    endpoints:\n", "    endpoint:\n"}}, "endpoint"},
		{"embedded etcd with replicas", "base", []mutation{{routes, "discovery:\n  etcd:\n    endpoints: [\"etcd:2379\"]\n    prefix: /services/\n", ""}}, "embedded etcd with 2 replicas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, "kubernetes", root)
			for _, m := range tc.m {
				m.apply(t, root)
			}
			ps := checkKubeDir(t, filepath.Join(root, filepath.FromSlash(tc.dir)))
			if !ps.contains(tc.want) {
				t.Errorf("want a problem containing %q, got %d:%s", tc.want, len(ps), ps)
			}
		})
	}
}
