package breaker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the resilience counters. A nil *Metrics is valid and counts nothing, so tests
// and tools need not register anything.
type Metrics struct {
	ejections     *prometheus.CounterVec
	breakerStates *prometheus.CounterVec
	panics        *prometheus.CounterVec
	checkFailures *prometheus.CounterVec
	refusals      *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg (if non-nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_outlier_ejections_total",
			Help: "Endpoints ejected by outlier detection (consecutive failures), by route.",
		}, []string{"route"}),
		breakerStates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_breaker_state_changes_total",
			Help: "Per-endpoint circuit breaker state changes, by route and the state entered.",
		}, []string{"route", "to"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_health_panic_entries_total",
			Help: "Times a route's pool entered panic mode (too few healthy endpoints, all are used), by route.",
		}, []string{"route"}),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_active_check_failures_total",
			Help: "Failed active health check probes, by route.",
		}, []string{"route"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_endpoint_refusing_total",
			Help: "Times an endpoint was set aside for refusing connections (or failing to be dialled), by route.",
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.ejections, m.breakerStates, m.panics, m.checkFailures, m.refusals)
	}
	return m
}

func (m *Metrics) ejected(route string) {
	if m != nil {
		m.ejections.WithLabelValues(route).Inc()
	}
}

func (m *Metrics) breakerChanged(route string, to gobreaker.State) {
	if m != nil {
		m.breakerStates.WithLabelValues(route, to.String()).Inc()
	}
}

func (m *Metrics) refusing(route string) {
	if m != nil {
		m.refusals.WithLabelValues(route).Inc()
	}
}

func (m *Metrics) panicEntered(route string) {
	if m != nil {
		m.panics.WithLabelValues(route).Inc()
	}
}

func (m *Metrics) checkFailed(route string) {
	if m != nil {
		m.checkFailures.WithLabelValues(route).Inc()
	}
}
