package consul

import "slices"

// checkEntry is the part of one /v1/health/state/any entry the feed needs. Decoding only
// these fields (not api.HealthCheck's output, definition, notes and so on) keeps the decode
// of every check in the datacenter cheap.
type checkEntry struct {
	Node        string
	CheckID     string
	ServiceName string
	Status      string
	ModifyIndex uint64
}

// checkKey identifies one check: check IDs are unique per node.
type checkKey struct{ node, id string }

// checkState is what a change to one check is detected from.
type checkState struct {
	service     string // "" for a node-level check
	status      string
	modifyIndex uint64
}

// indexChecks keys a health/state/any answer by check.
func indexChecks(entries []checkEntry) map[checkKey]checkState {
	m := make(map[checkKey]checkState, len(entries))
	for _, c := range entries {
		m[checkKey{c.Node, c.CheckID}] = checkState{service: c.ServiceName, status: c.Status, modifyIndex: c.ModifyIndex}
	}
	return m
}

// diffChecks calls service for each service whose checks were added, removed or changed
// (status or ModifyIndex) between old and cur, and node for each node whose node-level
// checks did. A name may be reported more than once.
func diffChecks(old, cur map[checkKey]checkState, service, node func(string)) {
	report := func(k checkKey, s checkState) {
		if s.service == "" {
			node(k.node)
		} else {
			service(s.service)
		}
	}
	for k, c := range cur {
		o, ok := old[k]
		if !ok {
			report(k, c)
			continue
		}
		if o.status != c.status || o.modifyIndex != c.modifyIndex || o.service != c.service {
			report(k, c)
			if o.service != c.service {
				report(k, o)
			}
		}
	}
	for k, o := range old {
		if _, ok := cur[k]; !ok {
			report(k, o)
		}
	}
}

// diffCatalog calls changed for each service name that appeared in cur, disappeared from
// it, or whose tags differ between old and cur. Tags are compared as sets: Consul lists a
// service's tags in no fixed order, so an unrelated write would otherwise re-read every
// service with more than one tag.
func diffCatalog(old, cur map[string][]string, changed func(string)) {
	for name, tags := range cur {
		if o, ok := old[name]; !ok || !sameTags(o, tags) {
			changed(name)
		}
	}
	for name := range old {
		if _, ok := cur[name]; !ok {
			changed(name)
		}
	}
}

// explainedRing remembers the Raft indexes at which the checks feed saw a change, so the
// catalog feed can tell whether an advance of the services index was a registration with
// checks (already handled) or something the checks cannot show (a sweep is needed).
type explainedRing struct {
	idx  [256]uint64
	next int
}

// sameTags says whether a and b hold the same tags, in any order. Sorting copies leaves
// the catalog answer as Consul sent it.
func sameTags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// add remembers index (0 means unknown and is not remembered), overwriting the oldest.
func (r *explainedRing) add(index uint64) {
	if index == 0 {
		return
	}
	r.idx[r.next] = index
	r.next = (r.next + 1) % len(r.idx)
}

// has says whether index is among the last indexes added.
func (r *explainedRing) has(index uint64) bool {
	return index != 0 && slices.Contains(r.idx[:], index)
}

// reset forgets every index: after an index reset old indexes may come back meaning other
// writes.
func (r *explainedRing) reset() { *r = explainedRing{} }
