package gateway

import (
	"fmt"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/filter"
	"github.com/switchyard/switchyard/filter/bodylimit"
	"github.com/switchyard/switchyard/filter/compress"
	"github.com/switchyard/switchyard/filter/cors"
	"github.com/switchyard/switchyard/filter/headers"
	"github.com/switchyard/switchyard/filter/ipfilter"
)

// routeFilters compiles a route's filter chain in the order ../shared/DESIGN.md fixes,
// outermost first: IP allow/deny, CORS preflight, auth and rate limit, body limit, request
// header edits; and on the way back response header edits, CORS headers, compression. A
// rate limit keyed on identity runs after auth (it needs who was admitted); any other runs
// before it, so a flood of unauthenticated requests meets its 429 before costing a bcrypt
// check or a forward auth call each. Filters whose block is off are left out, so a route
// without filters gets a nil chain and pays nothing. authenticate and rateLimit may be nil.
func routeFilters(rc *config.Route, authenticate, rateLimit filter.RequestFilter) (*filter.Chain, error) {
	var c filter.Chain
	ips, err := ipfilter.New(rc.IPAllow, rc.IPDeny)
	if err != nil {
		return nil, fmt.Errorf("ip_allow/ip_deny: %w", err)
	}
	if ips != nil {
		c.Request = append(c.Request, ips)
	}
	corsFilter, err := cors.New(rc.CORS)
	if err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	if corsFilter != nil {
		c.Request = append(c.Request, corsFilter)
	}
	limitAfterAuth := rc.RateLimit != nil && rc.RateLimit.Key == config.RateLimitKeyIdentity
	if rateLimit != nil && !limitAfterAuth {
		c.Request = append(c.Request, rateLimit)
	}
	if authenticate != nil {
		c.Request = append(c.Request, authenticate)
	}
	if rateLimit != nil && limitAfterAuth {
		c.Request = append(c.Request, rateLimit)
	}
	if rc.MaxBodyBytes != nil {
		if limit := bodylimit.New(*rc.MaxBodyBytes); limit != nil {
			c.Request = append(c.Request, limit)
		}
	}
	edits := headers.New(rc.Headers)
	if edits.EditsRequest() {
		c.Request = append(c.Request, edits)
	}
	// Response side, in the order the response passes them on its way to the client.
	if edits.EditsResponse() {
		c.Response = append(c.Response, edits)
	}
	if corsFilter != nil {
		c.Response = append(c.Response, corsFilter)
	}
	// Last, so it sees every header edit before deciding and is what the client reads.
	compressor, err := compress.New(rc.Compress)
	if err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	if compressor != nil {
		c.Response = append(c.Response, compressor)
	}
	if c.Empty() {
		return nil, nil
	}
	return &c, nil
}
