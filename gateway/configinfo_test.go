package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestConfigInfo: what /admin/config and switchyard_config_revision report through a file
// load, etcd documents applied and rejected, and a start from the last-known-good copy.
func TestConfigInfo(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	doc := func(prefix, up string) string {
		return fmt.Sprintf("routes:\n  - prefix: %s\n    upstreams: [%q]\n", prefix, up)
	}
	digest := func(s string) string { sum := sha256.Sum256([]byte(s)); return "sha256:" + hex.EncodeToString(sum[:]) }
	manyErrors := "routes:\n" + strings.Repeat("  - prefix: x\n    upstreams: [\"http://127.0.0.1:1\"]\n", 120)

	f := newFixture(t, doc("/svc", a))
	f.gw.CountReload(true)
	f.gw.SetConfigSource(ConfigSource{Name: "file:" + f.path})
	ci := f.gw.ConfigInfo()
	if ci.Source != "file:"+f.path || ci.Revision != 0 || ci.AppliedAt == nil || ci.Digest != digest(doc("/svc", a)) ||
		ci.LastKnownGood != nil || ci.LastRejected != nil {
		t.Fatalf("after a file load: %+v", ci)
	}

	type step struct {
		name    string
		rev     int64 // etcd revision of the document; 0: Reload of the file
		doc     string
		wantErr bool
		// want: the revision and digest in force, the rejected revision and first error (if any)
		wantRev     int64
		wantDigest  string
		rejectedRev int64
		rejectedErr string
		rejectedN   int
		lkg         bool // LastKnownGood still set and not superseded
		lkgAnswered bool
	}
	for _, tc := range []struct {
		name  string
		start ConfigSource
		steps []step
	}{
		{"etcd pushes", ConfigSource{Name: "etcd:/switchyard/config", Revision: 5}, []step{
			{name: "push applied", rev: 9, doc: doc("/svc", b), wantRev: 9, wantDigest: digest(doc("/svc", b))},
			{name: "push rejected", rev: 10, doc: doc("svc", b), wantErr: true, wantRev: 9, wantDigest: digest(doc("/svc", b)),
				rejectedRev: 10, rejectedErr: "etcd:/switchyard/config@rev 10:2: routes[0].prefix", rejectedN: 1},
			{name: "errors bounded", rev: 11, doc: manyErrors, wantErr: true, wantRev: 9, wantDigest: digest(doc("/svc", b)),
				rejectedRev: 11, rejectedErr: "etcd:/switchyard/config@rev 11:2: routes[0].prefix", rejectedN: 120},
			{name: "next push applied", rev: 12, doc: doc("/svc", a), wantRev: 12, wantDigest: digest(doc("/svc", a)),
				rejectedRev: 11, rejectedErr: "routes[0].prefix", rejectedN: 120},
		}},
		{"started from the last-known-good copy", ConfigSource{Name: "etcd:/switchyard/config", Revision: 7, FromLastKnownGood: true}, []step{
			{name: "etcd's document rejected", rev: 8, doc: doc("svc", b), wantErr: true, wantRev: 7, wantDigest: digest(doc("/svc", a)),
				rejectedRev: 8, rejectedErr: "routes[0].prefix", rejectedN: 1, lkg: true, lkgAnswered: true},
			{name: "etcd's document applied", rev: 8, doc: doc("/svc", a), wantRev: 8, wantDigest: digest(doc("/svc", a)),
				rejectedRev: 8, rejectedErr: "routes[0].prefix", rejectedN: 1},
		}},
		{"file reloads", ConfigSource{Name: "file:routes.yaml"}, []step{
			{name: "reload rejected", doc: doc("svc", b), wantErr: true, wantDigest: digest(doc("/svc", a)),
				rejectedErr: "routes.yaml:2: routes[0].prefix", rejectedN: 1},
			{name: "reload applied", doc: doc("/svc", b), wantDigest: digest(doc("/svc", b)), rejectedErr: "routes[0].prefix", rejectedN: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, doc("/svc", a))
			f.gw.CountReload(true)
			f.gw.SetConfigSource(tc.start)
			if got := testutil.ToFloat64(f.gw.metrics.revision); got != float64(tc.start.Revision) {
				t.Fatalf("switchyard_config_revision at start: %v, want %d", got, tc.start.Revision)
			}
			if ci := f.gw.ConfigInfo(); (ci.LastKnownGood != nil) != tc.start.FromLastKnownGood {
				t.Fatalf("at start: last_known_good %+v", ci.LastKnownGood)
			}
			for _, s := range tc.steps {
				before := f.gw.ConfigInfo()
				var err error
				if s.rev == 0 {
					f.write(t, s.doc)
					err = f.gw.Reload(f.path)
				} else {
					err = f.gw.ReloadRevision(fmt.Sprintf("etcd:/switchyard/config@rev %d", s.rev), s.rev, []byte(s.doc))
				}
				if (err != nil) != s.wantErr {
					t.Fatalf("%s: error %v, want error %v", s.name, err, s.wantErr)
				}
				ci := f.gw.ConfigInfo()
				if ci.Source != tc.start.Name || ci.Revision != s.wantRev || ci.Digest != s.wantDigest {
					t.Fatalf("%s: source %q revision %d digest %s, want %q %d %s", s.name, ci.Source, ci.Revision, ci.Digest, tc.start.Name, s.wantRev, s.wantDigest)
				}
				if got := testutil.ToFloat64(f.gw.metrics.revision); got != float64(s.wantRev) {
					t.Fatalf("%s: switchyard_config_revision %v, want %d", s.name, got, s.wantRev)
				}
				if s.wantErr && *ci.AppliedAt != *before.AppliedAt {
					t.Fatalf("%s: a rejected document moved applied_at", s.name)
				}
				r := ci.LastRejected
				if s.rejectedN == 0 {
					if r != nil {
						t.Fatalf("%s: last_rejected %+v, want none", s.name, r)
					}
				} else if r == nil || r.Revision != s.rejectedRev || r.Truncated != (s.rejectedN > maxRejectedErrors) || len(r.Errors) != min(s.rejectedN, maxRejectedErrors) ||
					!strings.Contains(r.Errors[0], s.rejectedErr) || r.At.IsZero() {
					t.Fatalf("%s: last_rejected %+v, want revision %d, %d errors, the first containing %q", s.name, r, s.rejectedRev, s.rejectedN, s.rejectedErr)
				}
				l := ci.LastKnownGood
				if tc.start.FromLastKnownGood && (l == nil || l.Revision != tc.start.Revision || l.Superseded == s.lkg || l.EtcdAnswered != s.lkgAnswered && s.lkg) {
					t.Fatalf("%s: last_known_good %+v", s.name, l)
				}
			}
		})
	}
}
