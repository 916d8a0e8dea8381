// Package httpx is the one HTTP layer every connector uses. It wraps
// github.com/hashicorp/go-retryablehttp with crmsync's policy:
//
//   - idempotent requests (GET, PUT, PATCH, DELETE, HEAD) are retried on
//     connection errors, timeouts, 408, 429 and 5xx (except 501);
//   - POST is never retried blindly: only on 429 (the server says it did not
//     process the request) and when the connection could not be opened;
//   - Retry-After (seconds or HTTP date) is honoured on 429 and 503, capped at
//     Options.RetryAfterMax; otherwise exponential backoff with jitter;
//   - a 429, or a 503 with Retry-After, pauses the whole Client, not only the
//     request that got it: until now + Retry-After (capped at RetryAfterMax;
//     RetryWaitMin for a 429 without one) no attempt of any method from any
//     goroutine is sent. A longer pause extends the one in force, a shorter
//     one never shortens it, and a call waiting out a pause returns as soon
//     as its context ends;
//   - a token bucket (golang.org/x/time/rate) paces every attempt per system;
//     after a pause the bucket, not the queue of waiting callers, sets the pace;
//   - every failure becomes a *connectors.Error with a Kind the engine acts on;
//   - a POST that may have been acted on is OutcomeUnknown, never Retryable:
//     if any of its attempts was written to the connection (httptrace) and
//     got no answer saying it was not processed (a 4xx, 429 above all), a
//     transport error or the end of its context (shutdown) leaves the create
//     unknown; errors.Is(err, context.Canceled) still holds. A POST whose
//     context ended, or whose attempt timed out, before anything was written
//     (waiting for a connection, a rate-limiter token or a pause) is
//     Retryable: nothing was sent. Idempotent requests cut by a transport
//     error or their context are Retryable;
//   - registered secrets are scrubbed from every error message, and request
//     headers are never logged.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
)

// Options configures a Client. Zero values take the defaults noted.
type Options struct {
	System        string        // system name used in errors and logs
	Timeout       time.Duration // per attempt, waits for the rate limiter and a pause included; default 30s
	RetryMax      int           // retries after the first attempt; default 4; negative disables retries
	RetryWaitMin  time.Duration // default 200ms
	RetryWaitMax  time.Duration // default 10s
	RetryAfterMax time.Duration // cap on a server's Retry-After; default 30s
	RateLimit     float64       // requests per second, 0 = unlimited
	Burst         int           // token bucket size; default 1 when RateLimit > 0
	MaxBodyBytes  int64         // response body limit; default 64 MiB
	Logger        zerolog.Logger
	// Transport replaces the default pooled transport (tests).
	Transport http.RoundTripper
	// ErrorMessage extracts the API's own message from an error body
	// (OData error, Laravel message, ...). Optional.
	ErrorMessage func(status int, body []byte) string
	// Observe, when set, is called after every attempt with its outcome
	// (status 0 on a transport error). Used for metrics.
	Observe func(method string, status int, d time.Duration)
}

// Client sends requests for one system. It is safe for concurrent use.
type Client struct {
	opts    Options
	idem    *retryablehttp.Client
	post    *retryablehttp.Client
	mu      sync.RWMutex
	secrets []string
}

// The defaults of a system's HTTP keys (timeout, retries,
// retry_after_max), applied by New to zero values.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultRetries       = 4
	DefaultRetryAfterMax = 30 * time.Second
)

// ForSystem builds the Client of one configured system from its common
// settings: errorMessage reads the API's own error bodies, and the token is
// registered as a secret.
func ForSystem(s connectors.Settings, errorMessage func(status int, body []byte) string) *Client {
	c := New(Options{
		System:        s.Name,
		Timeout:       s.HTTP.Timeout,
		RetryMax:      s.HTTP.Retries,
		RetryAfterMax: s.HTTP.RetryAfterMax,
		RateLimit:     s.HTTP.RateLimit,
		Burst:         s.HTTP.Burst,
		Logger:        s.Logger,
		ErrorMessage:  errorMessage,
		Observe:       s.HTTP.Observe,
	})
	c.AddSecret(s.Token.Value())
	return c
}

// New builds a Client. It does no network I/O.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetries
	}
	if o.RetryMax < 0 {
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 200 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 10 * time.Second
	}
	if o.RetryAfterMax <= 0 {
		o.RetryAfterMax = DefaultRetryAfterMax
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	base := o.Transport
	if base == nil {
		t := cleanhttp.DefaultPooledTransport()
		t.MaxIdleConnsPerHost = 64
		base = t
	}
	log := o.Logger.With().Str(logkey.System, o.System).Logger()
	gate := &gateTransport{next: base, pause: &pause{}, retryWaitMin: o.RetryWaitMin, maxPause: o.RetryAfterMax, log: log}
	if o.RateLimit > 0 {
		burst := o.Burst
		if burst <= 0 {
			burst = 1
		}
		gate.lim = rate.NewLimiter(rate.Limit(o.RateLimit), burst)
	}
	base = gate
	if o.Observe != nil {
		base = &observedTransport{next: base, observe: o.Observe}
	}
	c := &Client{opts: o}
	mk := func(policy retryablehttp.CheckRetry) *retryablehttp.Client {
		rc := retryablehttp.NewClient()
		// Never follow redirects: an API answering 3xx (Laravel redirects
		// unauthenticated non-JSON requests to /login) is an error to see,
		// not an HTML page to decode.
		rc.HTTPClient = &http.Client{Transport: base, Timeout: o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		rc.Logger = leveled{log: log}
		rc.RetryMax = o.RetryMax
		rc.RetryWaitMin = o.RetryWaitMin
		rc.RetryWaitMax = o.RetryWaitMax
		rc.CheckRetry = policy
		rc.Backoff = c.backoff
		rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
		return rc
	}
	c.idem = mk(idempotentPolicy)
	c.post = mk(postPolicy)
	return c
}

// AddSecret registers a value (token, password, client secret) that must
// never appear in an error message. Empty values are ignored.
func (c *Client) AddSecret(s string) {
	if len(s) < 4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, s)
}

// Redact replaces every registered secret in s.
func (c *Client) Redact(s string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, sec := range c.secrets {
		s = strings.ReplaceAll(s, sec, "[REDACTED]")
	}
	return s
}

// System returns the system name the client was built for.
func (c *Client) System() string { return c.opts.System }

// Request is one API call.
type Request struct {
	Method string
	URL    string
	Header http.Header
	// JSON, when non-nil, is encoded as the body with Content-Type application/json.
	JSON any
	// Form, when non-nil, is sent as application/x-www-form-urlencoded.
	Form url.Values
	// Op names the call in errors; default "METHOD path".
	Op string
	// Check, when set, validates a 2xx reply (that a list reply holds its
	// list, a created record its id). A Retryable error from it is retried
	// like a 5xx for idempotent methods; for a POST it is OutcomeUnknown.
	Check func(*Response) error
	// ErrorObjects makes a 2xx reply that is the API's error object (see
	// ErrorInBody) an error, retried like a 5xx where that is safe.
	ErrorObjects bool
}

// Response is a successful (2xx) answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// send sends req once through the retrying client (see Do).
func (c *Client) send(ctx context.Context, req Request) (*Response, error) {
	op := req.Op
	if op == "" {
		op = req.Method + " " + pathOf(req.URL)
	}
	var body []byte
	hdr := http.Header{}
	for k, v := range req.Header {
		hdr[k] = v
	}
	switch {
	case req.JSON != nil:
		b, err := json.Marshal(req.JSON)
		if err != nil {
			return nil, c.fail(op, 0, connectors.Rejected, "", fmt.Errorf("encode body: %w", err))
		}
		body = b
		hdr.Set("Content-Type", "application/json")
	case req.Form != nil:
		body = []byte(req.Form.Encode())
		hdr.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if hdr.Get("Accept") == "" {
		hdr.Set("Accept", "application/json")
	}
	idempotent := req.Method != http.MethodPost
	rc := c.idem
	var cl *call
	rctx := ctx
	if !idempotent {
		rc = c.post
		cl = &call{}
		rctx = context.WithValue(ctx, callKey{}, cl)
	}
	rreq, err := retryablehttp.NewRequestWithContext(rctx, req.Method, req.URL, body)
	if err != nil {
		return nil, c.fail(op, 0, connectors.Rejected, "", err)
	}
	rreq.Header = hdr
	resp, err := rc.Do(rreq)
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		kind := connectors.Retryable
		if !idempotent {
			kind = postErrorKind(ctx, cl, err)
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, c.fail(op, 0, kind, "", err)
	}
	defer resp.Body.Close()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
	if rerr != nil {
		kind := connectors.Retryable
		if !idempotent {
			kind = connectors.OutcomeUnknown
		}
		return nil, c.fail(op, resp.StatusCode, kind, "", fmt.Errorf("read body: %w", rerr))
	}
	if int64(len(data)) > c.opts.MaxBodyBytes {
		return nil, c.fail(op, resp.StatusCode, connectors.Retryable, "", fmt.Errorf("response body larger than %d bytes", c.opts.MaxBodyBytes))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
	}
	msg := ""
	if c.opts.ErrorMessage != nil {
		msg = c.opts.ErrorMessage(resp.StatusCode, data)
	}
	if msg == "" {
		msg = snippet(data)
	}
	e := c.fail(op, resp.StatusCode, Classify(resp.StatusCode, idempotent), msg, nil)
	e.RetryAfter = retryAfter(resp, time.Now())
	return nil, e
}

// postErrorKind classifies a POST that ended without an answer to hand
// back: a transport error, a cancelled or expired context, or a context that
// ended after an answer came.
func postErrorKind(ctx context.Context, cl *call, err error) connectors.Kind {
	switch {
	case cl.mayHaveActed():
		// An attempt was written, or answered other than 4xx, and nothing
		// says the server did not act: the create may have happened.
		return connectors.OutcomeUnknown
	case ctx.Err() != nil, !cl.lastSent(), isDialError(err):
		// Nothing of the last attempt was written (it was waiting for a
		// token, a pause or a connection) and every earlier one was
		// answered "not processed" or never sent.
		return connectors.Retryable
	}
	// Sent, but no write seen: a transport that does not report writes, or
	// a failure we cannot place. Assume the server may have it.
	return connectors.OutcomeUnknown
}

// Classify maps an HTTP status to an error kind.
func Classify(status int, idempotent bool) connectors.Kind {
	switch {
	case status == http.StatusUnauthorized:
		return connectors.Auth
	case status == http.StatusForbidden:
		return connectors.Forbidden
	case status == http.StatusNotFound:
		return connectors.NotFound
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return connectors.Retryable
	case status >= 500:
		if !idempotent {
			return connectors.OutcomeUnknown
		}
		return connectors.Retryable
	}
	return connectors.Rejected
}

func (c *Client) fail(op string, status int, kind connectors.Kind, msg string, err error) *connectors.Error {
	e := &connectors.Error{System: c.opts.System, Op: op, Kind: kind, Status: status, Message: c.Redact(msg)}
	if err != nil {
		e.Err = redactedError{msg: c.Redact(err.Error()), cause: err}
	}
	return e
}

// redactedError carries a scrubbed message but keeps the cause for errors.Is
// (context.Canceled, context.DeadlineExceeded).
type redactedError struct {
	msg   string
	cause error
}

func (r redactedError) Error() string { return r.msg }
func (r redactedError) Is(target error) bool {
	return errors.Is(r.cause, target)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	return u.Path
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return false
}

func idempotentPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if errors.Is(err, connectors.ErrWriteRefused) {
		return false, err
	}
	if err == nil && resp != nil && resp.StatusCode == http.StatusRequestTimeout {
		return true, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

func postPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if errors.Is(err, connectors.ErrWriteRefused) {
		return false, err
	}
	if err != nil {
		return isDialError(err), nil
	}
	return resp.StatusCode == http.StatusTooManyRequests, nil
}

// backoff honours a capped Retry-After on 429/503 and otherwise backs off
// exponentially with jitter between RetryWaitMin and RetryWaitMax.
func (c *Client) backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d := retryAfter(resp, time.Now()); d > 0 {
			if d > c.opts.RetryAfterMax {
				d = c.opts.RetryAfterMax
			}
			return d
		}
	}
	d := min << uint(attempt)
	if d <= 0 || d > max {
		d = max
	}
	// full jitter in [d/2, d]
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter parses a Retry-After header (delta seconds or HTTP date).
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

type observedTransport struct {
	next    http.RoundTripper
	observe func(method string, status int, d time.Duration)
}

func (t *observedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.observe(r.Method, status, time.Since(start))
	return resp, err
}

// leveled adapts zerolog to retryablehttp.LeveledLogger. retryablehttp logs
// the method and URL only; crmsync never puts credentials in URLs.
type leveled struct{ log zerolog.Logger }

func (l leveled) Error(msg string, kv ...any) { l.log.Error().Fields(kv).Msg(msg) }
func (l leveled) Info(msg string, kv ...any)  { l.log.Debug().Fields(kv).Msg(msg) }
func (l leveled) Debug(msg string, kv ...any) { l.log.Trace().Fields(kv).Msg(msg) }
func (l leveled) Warn(msg string, kv ...any)  { l.log.Warn().Fields(kv).Msg(msg) }

var _ retryablehttp.LeveledLogger = leveled{}
