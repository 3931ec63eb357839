package gateway

import (
	"errors"
	"reflect"

	"github.com/switchyard/switchyard/config"
)

// Reload re-reads path and applies it. A file that fails to load or apply is logged with
// every error and counted, and the config in force keeps serving.
func (g *Gateway) Reload(path string) error {
	cfg, err := config.Load(path)
	return g.reload(path, 0, false, cfg, err)
}

// ReloadDocument parses data as a routes.yaml named name (for example an etcd key and
// revision, "etcd:/switchyard/config@rev 42") and applies it, logging and counting the
// result as Reload does.
func (g *Gateway) ReloadDocument(name string, data []byte) error {
	cfg, err := config.Parse(name, data)
	return g.reload(name, 0, false, cfg, err)
}

// ReloadRevision is ReloadDocument for a document read from etcd at mod revision rev: the
// revision is what ConfigInfo and switchyard_config_revision report once it is in force, or
// what the rejection records. It also ends the last-known-good state (etcd has answered).
func (g *Gateway) ReloadRevision(name string, rev int64, data []byte) error {
	cfg, err := config.Parse(name, data)
	return g.reload(name, rev, true, cfg, err)
}

func (g *Gateway) reload(path string, rev int64, fromEtcd bool, cfg *config.Config, err error) error {
	if err == nil {
		if old := g.Config(); old != nil && !reflect.DeepEqual(old.Discovery, cfg.Discovery) {
			g.log.Warn("config reload: discovery settings changed; they take effect on restart", "file", path)
		}
		err = g.Apply(cfg)
	}
	if err != nil {
		g.metrics.reloads.WithLabelValues("failed").Inc()
		var errs config.Errors
		var msgs []string
		if errors.As(err, &errs) {
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
		} else {
			msgs = []string{err.Error()}
		}
		for _, m := range msgs {
			g.log.Error("config reload rejected; previous config still serving", "error", m)
		}
		g.rejected(rev, fromEtcd, msgs)
		return err
	}
	g.metrics.reloads.WithLabelValues("ok").Inc()
	g.applied(rev, fromEtcd)
	g.log.Info("config reloaded", "file", path, "routes", len(cfg.Routes))
	return nil
}

// CountReload records the result of a reload done outside Reload (the first load); a
// successful one is the config in force from now (SetConfigSource then names its source).
func (g *Gateway) CountReload(ok bool) {
	if ok {
		g.metrics.reloads.WithLabelValues("ok").Inc()
		g.applied(0, false)
	} else {
		g.metrics.reloads.WithLabelValues("failed").Inc()
	}
}
