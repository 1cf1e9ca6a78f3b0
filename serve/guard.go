package serve

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The server has no authentication, so what keeps a web page the user happens to visit from using
// it is the browser's same-origin policy, and that holds only if the server refuses what the policy
// lets through:
//
//   - a DNS-rebinding name (evil.example resolving to 127.0.0.1) makes the page same-origin with
//     the server; its requests carry the foreign name in Host, so every request's Host must name
//     the address the connection came in on (loopback names for a loopback address) or a host the
//     operator allowed (--allowed-hosts);
//   - a cross-origin page may send "simple" requests without asking (a POST with a text/plain body,
//     a GET through an <img> or EventSource): so POST bodies must be application/json, which a
//     browser sends cross-origin only after a CORS preflight this server never grants, and requests
//     that start jobs must not come from another origin (Sec-Fetch-Site, else Origin).

// ParseHosts splits a comma-separated --allowed-hosts list into host names or host:port pairs,
// rejecting entries that are not a bare host (no scheme, path or user info).
func ParseHosts(list string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if err := checkHostEntry(h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func checkHostEntry(h string) error {
	name, port := splitHost(h)
	if name == "" || strings.ContainsAny(name, "/?#@ \t*") || strings.Contains(h, "://") {
		return fmt.Errorf("allowed host %q: want a host name or address, optionally with :port", h)
	}
	if port != "" {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("allowed host %q: port must be 1..65535", h)
		}
	}
	return nil
}

// splitHost splits "host", "host:port", "[v6]" or "[v6]:port" into a lower-case host without
// brackets or a trailing dot, and the port ("" when absent).
func splitHost(h string) (host, port string) {
	host = h
	if hh, p, err := net.SplitHostPort(h); err == nil {
		host, port = hh, p
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		host = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), "."), port
}

// hostAllowed reports whether a request's Host names this server: the address the connection
// arrived on (any loopback name or address when that is a loopback address), on its port, or an
// entry of Options.AllowedHosts (an entry without a port allows any).
func (s *Server) hostAllowed(r *http.Request) bool {
	if r.Host == "" {
		return false
	}
	host, port := splitHost(r.Host)
	for _, a := range s.opt.AllowedHosts {
		ah, ap := splitHost(a)
		if ah == host && (ap == "" || ap == port || (port == "" && ap == "80")) {
			return true
		}
	}
	var lip net.IP
	var lport string
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, p, err := net.SplitHostPort(la.String()); err == nil {
			lip, lport = net.ParseIP(h), p
		}
	}
	if port == "" {
		port = "80"
	}
	if lport != "" && port != lport {
		return false
	}
	ip := net.ParseIP(host)
	if lip == nil || lip.IsLoopback() { // no connection address (a handler called directly): loopback only
		return host == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return ip != nil && ip.Equal(lip)
}

// sameOrigin reports whether a request that would start a job comes from this server's own page or
// from a client that is not a browser page: Sec-Fetch-Site where the browser sends it, else the
// Origin header's host against Host.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none": // the page itself, or the user typing the URL
		return true
	case "":
	default: // cross-site, same-site
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// guard refuses requests whose Host does not name this server (403), for every route.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r) {
			writeError(w, http.StatusForbidden, "", fmt.Sprintf("host %q is not this server's address; add it to the server's --allowed-hosts to use that name", r.Host))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// jobRequestOK answers and returns false a request that may not start a job: one from another
// origin (403) or, with a body, one whose body is not declared application/json (415).
func jobRequestOK(w http.ResponseWriter, r *http.Request, body bool) bool {
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "", "cross-origin request refused: jobs start only from this server's own page or from non-browser clients")
		return false
	}
	if !body {
		return true
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "", fmt.Sprintf("Content-Type %q: the body must be sent as application/json", ct))
		return false
	}
	return true
}
