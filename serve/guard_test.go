package serve

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// do sends one request with the given headers (Host among them) and returns the status and body.
func do(t *testing.T, method, target, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestExplicitDefaultsAreErrors: a field given with the zero value that otherwise means "default"
// (or given twice, or null, or a body that is not an object) is a 400 naming the field, in the JSON
// body and in the stream's query.
func TestExplicitDefaultsAreErrors(t *testing.T) {
	_, ts := newTestServer(t, Options{MaxN: 8, MaxSteps: 60}, 1)
	for _, c := range []struct{ body, field string }{
		{`{"n":0}`, "n"},
		{`{"steps":0}`, "steps"},
		{`{"every":0}`, "every"},
		{`{"eps_scale":0}`, "eps_scale"},
		{`{"model":""}`, "model"},
		{`{"sampler":""}`, "sampler"},
		{`{"spacing":""}`, "spacing"},
		{`{"format":""}`, "format"},
		{`{"sampler":"ddpm","steps":10,"variance":""}`, "variance"},
		{`null`, "body"},
		{` null `, "body"},
		{`"x"`, "body"},
		{`3`, "body"},
		{`true`, "body"},
		{`{"n":null}`, "n"},
		{`{"steps":null,"n":2}`, "steps"},
		{`{"n":2,"n":3}`, "n"},
		{`{"n":2,"N":2}`, "n"},
		{`{"seed":1,"steps":5,"SEED":2}`, "seed"},
		{`{"steps":5,"ſteps":6}`, "steps"}, // encoding/json folds ſ to s: the same field
		{`{"sampler":"ddim","sampler":"ddpm"}`, "sampler"},
	} {
		resp, b := post(t, ts.URL, c.body)
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400 (%s)", c.body, resp.StatusCode, b)
			continue
		}
		if e := decodeAPIError(t, b); e.Field != c.field || !strings.HasPrefix(e.Error, c.field+": ") {
			t.Errorf("%s: error %+v, want field %q", c.body, e, c.field)
		}
	}
	// The same settings when absent, or when valid, are fine.
	for _, body := range []string{`{}`, `{"steps":3,"n":1}`, `{"steps":3,"n":1,"seed":0,"eta":0,"clip":false,"eps_scale":1}`} {
		if resp, b := post(t, ts.URL, body); resp.StatusCode != 200 {
			t.Errorf("%s: status %d (%s)", body, resp.StatusCode, b)
		}
	}
	for _, c := range []struct{ query, field string }{
		{"n=0", "n"},
		{"steps=0", "steps"},
		{"every=0", "every"},
		{"eps_scale=0", "eps_scale"},
		{"model=", "model"},
		{"sampler=", "sampler"},
		{"spacing=", "spacing"},
		{"format=", "format"},
	} {
		resp, b := get(t, ts.URL+"/v1/samples/stream?"+c.query)
		if resp.StatusCode != 400 {
			t.Errorf("stream ?%s: status %d, want 400", c.query, resp.StatusCode)
			continue
		}
		if e := decodeAPIError(t, b); e.Field != c.field {
			t.Errorf("stream ?%s: error %+v, want field %q", c.query, e, c.field)
		}
	}
}

// TestContentType: a POST body must be declared application/json (a browser sends that cross-origin
// only after a CORS preflight), else 415 in JSON.
func TestContentType(t *testing.T) {
	_, ts := newTestServer(t, Options{}, 1)
	for _, c := range []struct {
		ctype string
		code  int
	}{
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"Application/JSON", 200},
		{"", 415},
		{"text/plain", 415},
		{"text/plain;charset=UTF-8", 415},
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data; boundary=x", 415},
		{"application/jsonp", 415},
		{"application/json; =bad", 415},
	} {
		hdr := map[string]string{}
		if c.ctype != "" {
			hdr["Content-Type"] = c.ctype
		}
		resp, b := do(t, "POST", ts.URL+"/v1/samples", `{"steps":2,"n":1}`, hdr)
		if resp.StatusCode != c.code {
			t.Errorf("Content-Type %q: status %d, want %d (%s)", c.ctype, resp.StatusCode, c.code, b)
			continue
		}
		if c.code != 200 {
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" || decodeAPIError(t, b).Error == "" {
				t.Errorf("Content-Type %q: answer %q %s, want a JSON error", c.ctype, ct, b)
			}
		}
	}
	// An empty body without a type is refused for its type, with one it is the usual 400.
	if resp, _ := do(t, "POST", ts.URL+"/v1/samples", "", nil); resp.StatusCode != 415 {
		t.Errorf("empty untyped body: %d, want 415", resp.StatusCode)
	}
}

// TestHostCheck: every route answers only to Host values naming the server: its address and the
// loopback names on its port, or the allowed hosts; anything else (a DNS-rebinding name) is a 403
// in JSON.
func TestHostCheck(t *testing.T) {
	_, ts := newTestServer(t, Options{AllowedHosts: []string{"ddpm.example", "Other.Example:9000", "[fd00::1]:81"}}, 1)
	u, _ := url.Parse(ts.URL)
	port := u.Port()
	for _, c := range []struct {
		host string
		code int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST:" + port, 200},
		{"localhost.:" + port, 200},
		{"[::1]:" + port, 200},
		{"127.0.0.2:" + port, 200}, // a loopback address: no name to rebind
		{"ddpm.example", 200},
		{"ddpm.example:1234", 200},
		{"other.example:9000", 200},
		{"[fd00::1]:81", 200},
		{"other.example:9001", 403},
		{"other.example", 403},
		{"127.0.0.1:1", 403},
		{"localhost", 403}, // port 80, not the server's
		{"evil.example:" + port, 403},
		{"evil.example", 403},
		{"localhost.evil.example:" + port, 403},
		{"10.0.0.1:" + port, 403},
		{"[fd00::2]:81", 403},
	} {
		for _, path := range []string{"/v1/models", "/healthz", "/metrics", "/", "/static/app.js", "/nothing"} {
			want := c.code
			if path == "/nothing" && want == 200 {
				want = 404
			}
			resp, b := do(t, "GET", ts.URL+path, "", map[string]string{"Host": c.host})
			if resp.StatusCode != want {
				t.Errorf("Host %q %s: status %d, want %d", c.host, path, resp.StatusCode, want)
				continue
			}
			if want == 403 && (resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(decodeAPIError(t, b).Error, "allowed-hosts")) {
				t.Errorf("Host %q %s: answer %s, want a JSON error naming --allowed-hosts", c.host, path, b)
			}
		}
		resp, _ := do(t, "POST", ts.URL+"/v1/samples", `{"steps":2,"n":1}`, map[string]string{"Host": c.host, "Content-Type": "application/json"})
		if resp.StatusCode != c.code {
			t.Errorf("Host %q POST: status %d, want %d", c.host, resp.StatusCode, c.code)
		}
		resp, _ = do(t, "GET", ts.URL+"/v1/samples/stream?steps=2&n=1", "", map[string]string{"Host": c.host})
		if resp.StatusCode != c.code {
			t.Errorf("Host %q stream: status %d, want %d", c.host, resp.StatusCode, c.code)
		}
	}
	waitMetrics(t, ts.URL, `ddpm_http_requests_total{code="403",handler="samples"} 9`)
}

// TestHostCheckWithoutConnection: a handler called without a connection address (as in a test
// recorder) knows no port, and takes loopback names and the allowed hosts only.
func TestHostCheckWithoutConnection(t *testing.T) {
	s, _ := newTestServer(t, Options{AllowedHosts: []string{"ddpm.example"}}, 1)
	for host, code := range map[string]int{"localhost": 200, "127.0.0.1:5": 200, "[::1]": 200, "ddpm.example:7": 200, "": 403, "evil.example": 403, "192.168.1.2": 403} {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("Host %q: %d, want %d", host, w.Code, code)
		}
	}
}

// TestHostCheckNonLoopback: on a non-loopback address the Host must be that address (or allowed);
// loopback names do not reach it.
func TestHostCheckNonLoopback(t *testing.T) {
	s, _ := newTestServer(t, Options{}, 1)
	local := &net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 8080}
	for host, code := range map[string]int{"192.168.1.5:8080": 200, "localhost:8080": 403, "127.0.0.1:8080": 403, "192.168.1.6:8080": 403, "myhost.lan:8080": 403} {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		r.Host = host
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != code {
			t.Errorf("Host %q: %d, want %d", host, w.Code, code)
		}
	}
}

// TestCrossOrigin: requests that start jobs are refused (403) when a browser says they come from
// another origin, through Sec-Fetch-Site or, in older browsers, Origin.
func TestCrossOrigin(t *testing.T) {
	_, ts := newTestServer(t, Options{}, 1)
	for _, c := range []struct {
		hdr  map[string]string
		code int
	}{
		{map[string]string{}, 200},
		{map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
		{map[string]string{"Sec-Fetch-Site": "none"}, 200},
		{map[string]string{"Origin": ts.URL}, 200},
		{map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": ts.URL}, 200},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": ts.URL}, 403},
		{map[string]string{"Origin": "http://evil.example"}, 403},
		{map[string]string{"Origin": "http://localhost:1"}, 403},
		{map[string]string{"Origin": "null"}, 403},
	} {
		hdr := map[string]string{"Content-Type": "application/json"}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		resp, b := do(t, "POST", ts.URL+"/v1/samples", `{"steps":2,"n":1}`, hdr)
		if resp.StatusCode != c.code {
			t.Errorf("POST %v: status %d, want %d (%s)", c.hdr, resp.StatusCode, c.code, b)
		} else if c.code == 403 && !strings.Contains(decodeAPIError(t, b).Error, "cross-origin") {
			t.Errorf("POST %v: %s", c.hdr, b)
		}
		resp, _ = do(t, "GET", ts.URL+"/v1/samples/stream?steps=2&n=1", "", c.hdr)
		if resp.StatusCode != c.code {
			t.Errorf("stream %v: status %d, want %d", c.hdr, resp.StatusCode, c.code)
		}
	}
	// Reading the models is no job: a cross-origin page cannot read the answer anyway.
	if resp, _ := do(t, "GET", ts.URL+"/v1/models", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 200 {
		t.Errorf("models cross-site: %d", resp.StatusCode)
	}
}

// TestBodyReadTimeout: a client that stalls in the middle of its body past the HTTP server's read
// timeout gets a 408 in JSON, not a 500 or plain text.
func TestBodyReadTimeout(t *testing.T) {
	s, _ := newTestServer(t, Options{}, 1)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ReadTimeout = 300 * time.Millisecond
	ts.Start()
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/samples HTTP/1.1\r\nHost: "+ts.Listener.Addr().String()+"\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"steps\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s, want 408 in JSON", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if e := decodeAPIError(t, b); e.Field != "body" || !strings.Contains(e.Error, "timeout") {
		t.Errorf("error %+v", e)
	}
}
