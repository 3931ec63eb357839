package jwt

import (
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
)

// keySetMetrics counts JWKS fetches and gauges the keys each URL serves. The url label is
// bounded by the config (one per jwks_url) and carries no credentials (redactURL).
type keySetMetrics struct {
	refreshes *prometheus.CounterVec
	loaded    *prometheus.GaugeVec
}

func newKeySetMetrics(reg prometheus.Registerer) *keySetMetrics {
	m := &keySetMetrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_auth_jwks_refreshes_total",
			Help: "JWKS fetches by result (ok, failed); a failed fetch keeps the last good keys.",
		}, []string{"result"}),
		loaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_auth_jwks_keys",
			Help: "Usable keys in the last good JWKS of each URL.",
		}, []string{"url"}),
	}
	if reg != nil {
		reg.MustRegister(m.refreshes, m.loaded)
	}
	return m
}

func (m *keySetMetrics) refreshed(ok bool) {
	result := "failed"
	if ok {
		result = "ok"
	}
	m.refreshes.WithLabelValues(result).Inc()
}

func (m *keySetMetrics) keys(jwksURL string, n int) {
	m.loaded.WithLabelValues(redactURL(jwksURL)).Set(float64(n))
}

func (m *keySetMetrics) forget(jwksURL string) {
	m.loaded.DeleteLabelValues(redactURL(jwksURL))
}

// redactURL drops the user info, query and fragment of a JWKS URL, which may hold
// credentials, for logs and metric labels.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid-url"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}
