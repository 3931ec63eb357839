package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/switchyard/switchyard/upstream"
)

// Retry pacing after a failed read: go-zookeeper reconnects on its own, so the backoff only
// keeps a broken ensemble from being hammered by every watched service at once.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// node is one instance znode as last read.
type node struct {
	ep    upstream.Endpoint
	ok    bool            // false: its data was rejected and it is not in the snapshot
	watch <-chan zk.Event // its data watch; nil means the data must be read (again)
}

// watcher is the state of one Watch call. Only nodes whose watch fired are read again, so
// a change costs one or two round trips however large the service is.
type watcher struct {
	d       *Discoverer
	service string
	path    string
	log     *slog.Logger

	children <-chan zk.Event // children watch, or the exists watch while the path is missing; nil: re-read
	nodes    map[string]*node
	last     *upstream.Snapshot // last emitted
}

// Watch implements upstream.Discoverer for the node <root>/<t.Service> (the other Target
// fields are Consul's). A missing service node is an empty pool (emitted once); the
// discoverer waits for the node to be created. Nodes
// whose data does not parse are skipped with a warning and counted as rejected. While the
// ensemble is unreachable the last snapshot stays in force; after a session expiry
// everything is read again and the watches are set anew.
func (d *Discoverer) Watch(ctx context.Context, t upstream.Target, update func(upstream.Snapshot)) error {
	service := t.Service
	w := &watcher{
		d:       d,
		service: service,
		path:    d.root + "/" + service,
		log:     d.log.With("service", service),
		nodes:   make(map[string]*node),
	}
	if service == "" || strings.Contains(service, "/") {
		// No registry answer can fix the name: serve an empty pool (503) rather than loop.
		w.log.Error("invalid service name for zookeeper; serving an empty pool", "path", w.path)
		w.emit(update)
		<-ctx.Done()
		return ctx.Err()
	}
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := w.refresh()
		if err == nil {
			failures = 0
			w.emit(update)
			if err := w.wait(ctx); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, zk.ErrInvalidPath) {
			w.log.Error("invalid service name for zookeeper; serving an empty pool", "path", w.path, "err", err)
			w.nodes = map[string]*node{}
			w.emit(update)
			<-ctx.Done()
			return ctx.Err()
		}
		d.metrics.Error(Registry, service)
		delay := backoff(failures)
		failures++
		level := slog.LevelWarn
		if transient(err) {
			level = slog.LevelInfo // the ensemble is away; go-zookeeper is reconnecting
		}
		w.log.Log(ctx, level, "zookeeper read failed; keeping the last snapshot", "path", w.path, "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the full-jitter delay before retry number n (from 0).
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 16 {
		d = min(backoffMin<<n, backoffMax)
	}
	return d/2 + rand.N(d/2)
}

// refresh reads what is not covered by a live watch: the children list if its watch fired,
// then the data of every node that is new or whose data watch fired. On error the state
// stays consistent (unread parts stay marked unread) and the caller retries.
func (w *watcher) refresh() error {
	conn := w.d.conn
	for w.children == nil {
		names, _, ch, err := conn.ChildrenW(w.path)
		if errors.Is(err, zk.ErrNoNode) {
			exists, _, ech, err := conn.ExistsW(w.path)
			if err != nil {
				return fmt.Errorf("exists %s: %w", w.path, err)
			}
			if exists {
				continue // created between the two calls
			}
			w.children = ech // fires when the service node is created
			clear(w.nodes)
			return nil
		}
		if err != nil {
			return fmt.Errorf("children of %s: %w", w.path, err)
		}
		w.children = ch
		present := make(map[string]bool, len(names))
		for _, name := range names {
			present[name] = true
			if w.nodes[name] == nil {
				w.nodes[name] = &node{}
			}
		}
		for name := range w.nodes {
			if !present[name] {
				delete(w.nodes, name)
			}
		}
	}
	for name, n := range w.nodes {
		if n.watch != nil {
			continue
		}
		p := w.path + "/" + name
		data, _, ch, err := conn.GetW(p)
		if errors.Is(err, zk.ErrNoNode) {
			delete(w.nodes, name) // gone since the listing; the children watch fires too
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", p, err)
		}
		n.watch = ch
		n.ep, err = parseNode(name, data)
		n.ok = err == nil
		if err != nil {
			w.log.Warn("skipping malformed zookeeper node", "node", p, "err", err)
			w.d.metrics.Rejected(Registry, w.service)
		}
	}
	return nil
}

// parseNode reads an instance node. Empty data falls back to the node's name, for
// registrars that encode host:port in the name alone.
func parseNode(name string, data []byte) (upstream.Endpoint, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		ep, err := upstream.ParseEntry([]byte(name))
		if err != nil {
			return upstream.Endpoint{}, fmt.Errorf("empty data, and the node name is not host:port: %w", err)
		}
		return ep, nil
	}
	return upstream.ParseEntry(data)
}

// emit delivers the current set if it differs from the last one delivered.
func (w *watcher) emit(update func(upstream.Snapshot)) {
	eps := make([]upstream.Endpoint, 0, len(w.nodes))
	for _, n := range w.nodes {
		if n.ok {
			eps = append(eps, n.ep)
		}
	}
	s := upstream.NewSnapshot(eps)
	if w.last != nil && w.last.Equal(s) {
		return
	}
	w.last = &s
	w.log.Debug("zookeeper snapshot", "endpoints", s.Len())
	w.d.metrics.Updated(Registry, w.service)
	update(s)
}

// wait blocks until at least one watch fires (or ctx ends), then takes every other watch
// that has fired too, so a burst of changes costs one re-read and one snapshot.
func (w *watcher) wait(ctx context.Context) error {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	names := []string{""} // names[i] is the node behind cases[i]; "" for ctx and children
	if w.children != nil {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.children)})
		names = append(names, "")
	}
	for name, n := range w.nodes {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.watch)})
		names = append(names, name)
	}
	blocking := true
	for {
		if !blocking {
			cases[0] = reflect.SelectCase{Dir: reflect.SelectDefault}
		}
		i, v, _ := reflect.Select(cases)
		switch {
		case !blocking && i == 0:
			return nil // nothing more has fired
		case blocking && i == 0:
			return ctx.Err()
		}
		blocking = false
		ev, _ := v.Interface().(zk.Event)
		// Disarm the fired case: a fired go-zookeeper watch channel is closed after its one
		// event and would otherwise be selected forever.
		cases[i].Chan = reflect.ValueOf((<-chan zk.Event)(nil))
		if ev.Type == zk.EventNotWatching {
			// Session expired (or the client closed): every watch is gone, read it all.
			w.children = nil
			for _, n := range w.nodes {
				n.watch = nil
			}
			return nil
		}
		if names[i] == "" {
			w.children = nil
			continue
		}
		if n := w.nodes[names[i]]; n != nil {
			if ev.Type == zk.EventNodeDeleted {
				delete(w.nodes, names[i])
			} else {
				n.watch = nil
			}
		}
	}
}
