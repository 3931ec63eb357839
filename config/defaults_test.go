package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// blockCase is one feature block for the WithDefaults tests, its type erased so one table
// covers them all.
type blockCase struct {
	key      string               // as written under a route
	required string               // YAML for the fields that have no default
	bare     func() any           // *T with only the required fields, as code would build it
	parsed   func(p *Policy) any  // the route's resolved *T
	complete func(b any) any      // WithDefaults on a *T
	builtin  func() reflect.Value // the built-in block
}

func caseOf[T Block](key, required string, bare *T, parsed func(*Policy) *T) blockCase {
	return blockCase{
		key:      key,
		required: required,
		bare:     func() any { return cloneBlock(bare) },
		parsed:   func(p *Policy) any { return parsed(p) },
		complete: func(b any) any { return WithDefaults(b.(*T)) },
		builtin: func() reflect.Value {
			b, _ := builtinBlock[T]()
			return reflect.ValueOf(b).Elem()
		},
	}
}

var blockCases = []blockCase{
	caseOf("retry", "", &Retry{}, func(p *Policy) *Retry { return p.Retry }),
	caseOf("passive_health", "", &PassiveHealth{}, func(p *Policy) *PassiveHealth { return p.PassiveHealth }),
	caseOf("breaker", "", &Breaker{}, func(p *Policy) *Breaker { return p.Breaker }),
	caseOf("rate_limit", "rps: 2.5, ", &RateLimit{RPS: 2.5}, func(p *Policy) *RateLimit { return p.RateLimit }),
	caseOf("health_check", "path: /h, ", &HealthCheck{Path: "/h"}, func(p *Policy) *HealthCheck { return p.HealthCheck }),
	caseOf("cors", "allow_origins: [\"https://a.example\"], ", &CORS{AllowOrigins: []string{"https://a.example"}}, func(p *Policy) *CORS { return p.CORS }),
	caseOf("compress", "", &Compress{}, func(p *Policy) *Compress { return p.Compress }),
}

func routeWith(key, body string) string {
	return fmt.Sprintf("routes:\n  - prefix: /\n    upstreams: [\"http://h:1\"]\n    %s: {%s}\n", key, body)
}

// zeroLiteral is how a file writes the zero value of a field of kind k; "" for kinds no
// built-in default uses.
func zeroLiteral(k reflect.Kind) string {
	switch k {
	case reflect.Slice:
		return "[]"
	case reflect.String:
		return `""`
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Float64:
		return "0"
	}
	return ""
}

// WithDefaults and Parse must agree on every field that has a default: where validation
// accepts an explicit zero, that zero is a setting and WithDefaults keeps it; where it
// does not, a zero can only mean "left out" and WithDefaults fills in the built-in value.
func TestWithDefaultsAgreesWithValidation(t *testing.T) {
	for _, bc := range blockCases {
		builtin := bc.builtin()
		fields, names := fieldsOf(builtin.Type())
		for _, name := range names {
			def := builtin.FieldByIndex(fields[name])
			lit := zeroLiteral(def.Kind())
			if name == "enabled" || def.IsZero() || lit == "" {
				continue
			}
			path := bc.key + "." + name
			t.Run(path, func(t *testing.T) {
				c, err := Parse("routes.yaml", []byte(routeWith(bc.key, bc.required+name+": "+lit)))
				if err != nil {
					if !strings.Contains(err.Error(), "routes[0]."+path+":") {
						t.Fatalf("explicit zero refused, but not for this field: %v", err)
					}
					got := reflect.ValueOf(bc.complete(bc.bare())).Elem().FieldByIndex(fields[name])
					if !reflect.DeepEqual(got.Interface(), def.Interface()) {
						t.Fatalf("validation refuses an explicit zero, so zero means left out: WithDefaults gave %v, want the built-in %v", got, def)
					}
					return
				}
				resolved := bc.parsed(&c.Routes[0].Policy)
				if f := reflect.ValueOf(resolved).Elem().FieldByIndex(fields[name]); !f.IsZero() && !(f.Kind() == reflect.Slice && f.Len() == 0) {
					t.Fatalf("Parse accepted an explicit zero but resolved it to %v", f)
				}
				if got := bc.complete(resolved); !reflect.DeepEqual(got, resolved) {
					t.Fatalf("explicit zero is a setting, but WithDefaults changed the block:\n got %+v\nwant %+v", got, resolved)
				}
			})
		}
	}
}

// A block the file writes with nothing but its required fields resolves to the built-in
// one, and WithDefaults, which packages apply to whatever block they are given, leaves it
// as it is.
func TestWithDefaultsKeepsParsedBlock(t *testing.T) {
	for _, bc := range blockCases {
		t.Run(bc.key, func(t *testing.T) {
			c := mustParse(t, routeWith(bc.key, strings.TrimSuffix(bc.required, ", ")))
			parsed := bc.parsed(&c.Routes[0].Policy)
			pv, builtin := reflect.ValueOf(parsed).Elem(), bc.builtin()
			fields, _ := fieldsOf(pv.Type())
			for name, idx := range fields {
				if f, def := pv.FieldByIndex(idx), builtin.FieldByIndex(idx); name != "enabled" && !def.IsZero() && !reflect.DeepEqual(f.Interface(), def.Interface()) {
					t.Errorf("%s = %v, want the built-in %v", name, f, def)
				}
			}
			if got := bc.complete(parsed); !reflect.DeepEqual(got, parsed) {
				t.Fatalf("WithDefaults changed a parsed block:\n got %+v\nwant %+v", got, parsed)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	off := false
	tests := []struct {
		name string
		in   *PassiveHealth
		want *PassiveHealth
	}{
		{"nil is the built-in block", nil, &builtinPassiveHealth},
		{"set fields and Enabled are kept", &PassiveHealth{Enabled: &off, ConsecutiveFailures: 2, EjectionTime: time.Minute},
			&PassiveHealth{Enabled: &off, ConsecutiveFailures: 2, EjectionTime: time.Minute, FailureStatuses: []int{500, 502, 503, 504},
				MaxEjectionTime: 300 * time.Second}},
		{"an empty status list is a setting", &PassiveHealth{FailureStatuses: []int{}, MaxEjectedPercent: 10, PanicThreshold: 20},
			&PassiveHealth{ConsecutiveFailures: 5, FailureStatuses: []int{}, EjectionTime: 30 * time.Second,
				MaxEjectionTime: 300 * time.Second, MaxEjectedPercent: 10, PanicThreshold: 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := WithDefaults(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}

	got := WithDefaults[PassiveHealth](nil)
	got.FailureStatuses[0] = 599
	if builtinPassiveHealth.FailureStatuses[0] != 500 {
		t.Fatal("WithDefaults returned the built-in block's slice")
	}

	for _, tc := range []struct {
		rps  float64
		want int
	}{{0.2, 1}, {2.5, 3}, {1e12, 1<<31 - 1}} {
		if got := WithDefaults(&RateLimit{RPS: tc.rps}); got.Burst != tc.want || got.Key != RateLimitKeyRoute {
			t.Errorf("rps %g: burst %d key %q, want %d %q", tc.rps, got.Burst, got.Key, tc.want, RateLimitKeyRoute)
		}
	}
}
