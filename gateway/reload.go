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
	return g.reload(path, cfg, err)
}

// ReloadDocument parses data as a routes.yaml named name (for example an etcd key and
// revision, "etcd:/switchyard/config@rev 42") and applies it, logging and counting the
// result as Reload does.
func (g *Gateway) ReloadDocument(name string, data []byte) error {
	cfg, err := config.Parse(name, data)
	return g.reload(name, cfg, err)
}

func (g *Gateway) reload(path string, cfg *config.Config, err error) error {
	if err == nil {
		if old := g.Config(); old != nil && !reflect.DeepEqual(old.Discovery, cfg.Discovery) {
			g.log.Warn("config reload: discovery settings changed; they take effect on restart", "file", path)
		}
		err = g.Apply(cfg)
	}
	if err != nil {
		g.metrics.reloads.WithLabelValues("failed").Inc()
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				g.log.Error("config reload rejected; previous config still serving", "error", e.Error())
			}
		} else {
			g.log.Error("config reload rejected; previous config still serving", "error", err.Error())
		}
		return err
	}
	g.metrics.reloads.WithLabelValues("ok").Inc()
	g.log.Info("config reloaded", "file", path, "routes", len(cfg.Routes))
	return nil
}

// CountReload records the result of a reload done outside Reload (the first load).
func (g *Gateway) CountReload(ok bool) {
	if ok {
		g.metrics.reloads.WithLabelValues("ok").Inc()
	} else {
		g.metrics.reloads.WithLabelValues("failed").Inc()
	}
}
