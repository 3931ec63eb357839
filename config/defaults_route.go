package config

// routeDefaults fills a route's own keys: the registry of every service target when only
// one is configured, passing_only for Consul targets, weights and the mirror's share, and
// rewrite.prefix "/" for strip_prefix.
func routeDefaults(r *Route, path string, regs []string, set func(string) bool) {
	consul := false
	target := func(b *Backend, p string) {
		if b.Service != "" && b.Discovery == "" && len(regs) == 1 {
			b.Discovery = regs[0]
		}
		consul = consul || b.Service != "" && b.Discovery == RegistryConsul
		for j := range b.Upstreams {
			orDefault(set, p+upstreamPath(j)+".weight", &b.Upstreams[j].Weight, 1)
		}
	}
	own := Backend{Service: r.Service, Upstreams: r.Upstreams, Discovery: r.Discovery}
	target(&own, path)
	r.Discovery = own.Discovery
	for j := range r.Split {
		bp := path + ".split[" + itoa(j) + "]"
		target(&r.Split[j].Backend, bp)
		orDefault(set, bp+".weight", &r.Split[j].Weight, 1)
	}
	if m := r.Mirror; m != nil {
		target(&m.Backend, path+".mirror")
		orDefault(set, path+".mirror.percent", &m.Percent, 100)
	}
	if consul && r.PassingOnly == nil {
		r.PassingOnly = ptr(true)
	}
	if r.StripPrefix && (r.Rewrite == nil || r.Rewrite.Prefix == "") {
		if r.Rewrite == nil {
			r.Rewrite = &Rewrite{}
		}
		r.Rewrite.Prefix = "/"
	}
}
