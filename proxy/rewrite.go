package proxy

// rewritePath returns the path forwarded for canonical path p on a route with rewrite.prefix:
// the route's matched prefix replaced by the rewrite prefix, as Gateway API's
// ReplacePrefixMatch does ("/api/users" under prefix "/api" rewritten to "/v2" is
// "/v2/users"; "/api" is "/v2"; "/api/" is "/v2/"). A rewrite prefix of "/" strips the
// matched prefix (strip_prefix: true). Both prefixes are in canonical escaped form, so the
// result is a canonical path too.
func (r *Route) rewritePath(p string) string {
	rest := p // what follows the matched prefix: "" or "/..."
	if r.matchPrefix != "/" {
		rest = p[len(r.matchPrefix):]
	} else if p == "/" {
		rest = ""
	}
	switch {
	case r.rewritePrefix == "/":
		if rest == "" {
			return "/"
		}
		return rest
	case rest == "":
		return r.rewritePrefix
	}
	return r.rewritePrefix + rest
}
