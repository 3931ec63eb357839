package upstream

import "github.com/prometheus/client_golang/prometheus"

// DiscoveryMetrics are the counters every discoverer feeds. A nil *DiscoveryMetrics is valid
// and counts nothing, so tests and tools need not register anything.
type DiscoveryMetrics struct {
	rejected *prometheus.CounterVec
	errors   *prometheus.CounterVec
	updates  *prometheus.CounterVec
}

// NewDiscoveryMetrics creates the discovery counters and registers them with reg (if non-nil).
func NewDiscoveryMetrics(reg prometheus.Registerer) *DiscoveryMetrics {
	m := &DiscoveryMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_entries_rejected_total",
			Help: "Registry entries skipped because they could not be parsed, by registry and service.",
		}, []string{"registry", "service"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_errors_total",
			Help: "Failed registry calls (the last good snapshot stays in force), by registry and service.",
		}, []string{"registry", "service"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_registry_updates_total",
			Help: "Snapshots emitted by discoverers, by registry and service.",
		}, []string{"registry", "service"}),
	}
	if reg != nil {
		reg.MustRegister(m.rejected, m.errors, m.updates)
	}
	return m
}

// Rejected counts one malformed registry entry.
func (m *DiscoveryMetrics) Rejected(registry, service string) {
	if m != nil {
		m.rejected.WithLabelValues(registry, service).Inc()
	}
}

// Error counts one failed registry call.
func (m *DiscoveryMetrics) Error(registry, service string) {
	if m != nil {
		m.errors.WithLabelValues(registry, service).Inc()
	}
}

// Updated counts one emitted snapshot.
func (m *DiscoveryMetrics) Updated(registry, service string) {
	if m != nil {
		m.updates.WithLabelValues(registry, service).Inc()
	}
}
