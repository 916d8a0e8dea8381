package conntest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// API sends requests straight to an emulator, as curl or another user of
// the system would: bearer token, Accept: application/json, JSON bodies.
type API struct {
	// BaseURL is the emulator's root (no trailing slash).
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>".
	Token string
	// HTTP is the client used (the test server's).
	HTTP *http.Client
}

// Do sends method path (with query) and body (JSON-encoded when not nil) and
// returns the status and raw answer.
func (a *API) Do(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode %s %s body: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.BaseURL+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// JSON sends a request that must succeed (2xx) and decodes the JSON object
// it answers (nil for an empty body).
func (a *API) JSON(t testing.TB, method, path string, body any) map[string]any {
	t.Helper()
	status, data := a.Do(t, method, path, body)
	if status < 200 || status > 299 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, status, snippet(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, snippet(data))
	}
	return m
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Lookup returns the value at a dotted path in a decoded JSON object; a
// numeric segment indexes a list ("leads.0.email"). ok is false when the
// path does not exist.
func Lookup(m map[string]any, path string) (v any, ok bool) {
	var cur any = m
	for _, seg := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur, ok = c[seg]
			if !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Flatten returns every leaf of a decoded JSON value by dotted path. Empty
// maps and lists are leaves.
func Flatten(m map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch c := v.(type) {
		case map[string]any:
			if len(c) == 0 && prefix != "" {
				out[prefix] = c
			}
			for k, x := range c {
				walk(join(prefix, k), x)
			}
		case []any:
			if len(c) == 0 {
				out[prefix] = c
			}
			for i, x := range c {
				walk(join(prefix, strconv.Itoa(i)), x)
			}
		default:
			out[prefix] = v
		}
	}
	walk("", m)
	return out
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// Nest turns a dotted path and value into nested maps ("a.b", 1 => {"a":{"b":1}}).
func Nest(path string, v any) map[string]any {
	segs := strings.Split(path, ".")
	out := map[string]any{segs[len(segs)-1]: v}
	for i := len(segs) - 2; i >= 0; i-- {
		out = map[string]any{segs[i]: out}
	}
	return out
}

// same reports whether two decoded JSON values are equal (numbers compared
// as JSON numbers).
func same(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// exchange is one request the emulator's server saw.
type exchange struct {
	At     time.Time // when the request arrived
	Done   time.Time // when the answer was written
	Method string
	Path   string
	Query  string
	Body   []byte
	Status int // 0: the connection was cut without an answer
}

func (x exchange) url() string { return x.Path + "?" + x.Query }

// recorder sits in front of the emulator and keeps every exchange.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	log  []exchange
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	x := exchange{At: time.Now(), Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery}
	if req.Body != nil && req.Method != http.MethodGet {
		b, _ := io.ReadAll(req.Body)
		x.Body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	sw := &statusWriter{ResponseWriter: w}
	r.next.ServeHTTP(sw, req)
	x.Status = sw.status
	if x.Status == 0 && !sw.hijacked {
		x.Status = http.StatusOK
	}
	x.Done = time.Now()
	r.mu.Lock()
	r.log = append(r.log, x)
	r.mu.Unlock()
}

// since returns the exchanges recorded from index i on, and the next index.
func (r *recorder) since(i int) ([]exchange, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log[min(i, len(r.log)):]), len(r.log)
}

func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.log)
}

// statusWriter records the status and lets the fault injector hijack.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("conntest: response writer cannot hijack")
	}
	s.hijacked = true
	return hj.Hijack()
}

// countKeys counts how often each key appears.
func countKeys(keys []string) map[string]int {
	out := make(map[string]int, len(keys))
	for _, k := range keys {
		out[k]++
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstN(keys []string, n int) string {
	if len(keys) > n {
		return fmt.Sprintf("%v … (%d in all)", keys[:n], len(keys))
	}
	return fmt.Sprint(keys)
}
