package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/logkey"
)

// The console's changing actions: run a flow now, replay or drop a dead
// letter. Each needs the admin token (Options.AdminToken, the config's
// admin.token), sent as "Authorization: Bearer TOKEN" (scripts, curl) or
// as the form field "token" (the console's buttons); without a configured
// token they are refused. The token is compared in constant time and never
// written to a log or an answer.
//
// An action takes its flow's guard, the same one a scheduled run takes, so
// it never runs beside that flow's run: a busy flow answers 409 and the
// operator tries again when the run has finished.

// actionAnswer is what an action answers: JSON for a script, a redirect to
// the console (with the message shown on top) for a form.
type actionAnswer struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Flow    string `json:"flow,omitempty"`
	Key     string `json:"key,omitempty"`
}

func (d *Daemon) actionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /flows/{flow}/run", d.action(d.runNow))
	// Dead-letter keys hold slashes (flow/target/record): the key ends the path.
	mux.HandleFunc("POST /deadletters/replay/{key...}", d.action(d.replay))
	mux.HandleFunc("POST /deadletters/drop/{key...}", d.action(d.drop))
}

// maxActionBody bounds a form post (the token and nothing else).
const maxActionBody = 4 << 10

func (d *Daemon) action(do func(r *http.Request) actionAnswer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxActionBody)
		form := strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
		var a actionAnswer
		switch {
		case d.o.AdminToken == "":
			a = actionAnswer{Status: http.StatusForbidden, Message: "changing actions are disabled: set admin.token in the config (or CRMSYNC_ADMIN_TOKEN through ${...}) to enable them"}
		case !d.tokenOK(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="crmsync"`)
			a = actionAnswer{Status: http.StatusUnauthorized, Message: "wrong or missing admin token"}
		default:
			a = do(r)
		}
		if a.Status == 0 {
			a.Status = http.StatusOK
		}
		d.o.Logger.Info().Str("action", r.URL.Path).Int("status", a.Status).Str("remote", r.RemoteAddr).Msg("console action: " + a.Message)
		if form {
			http.Redirect(w, r, "/?"+url.Values{"msg": {a.Message}, "ok": {okFlag(a.Status)}}.Encode(), http.StatusSeeOther)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.Status)
		_ = json.NewEncoder(w).Encode(a)
	}
}

func okFlag(status int) string {
	if status < 300 {
		return "1"
	}
	return "0"
}

// tokenOK compares the request's token with the configured one in constant
// time (both hashed first, so neither the length leaks).
func (d *Daemon) tokenOK(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.PostFormValue("token")
	}
	want := sha256.Sum256([]byte(d.o.AdminToken))
	have := sha256.Sum256([]byte(got))
	return got != "" && subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

func (d *Daemon) job(name string) (engine.Flow, bool) {
	for _, j := range d.o.Jobs {
		if j.Flow.Name == name {
			return j.Flow, true
		}
	}
	return engine.Flow{}, false
}

// background starts fn with its flow's guard taken, on the daemon's run
// context, counted by the shutdown. It answers what to tell the operator.
func (d *Daemon) background(flow string, what string, fn func(ctx context.Context, stop <-chan struct{})) actionAnswer {
	d.mu.Lock()
	if d.runCtx == nil || d.stopping {
		d.mu.Unlock()
		return actionAnswer{Status: http.StatusServiceUnavailable, Message: "the daemon is not running flows (starting or stopping): try again", Flow: flow}
	}
	ctx, stop := d.runCtx, d.stop
	if !d.holds(flow) {
		d.mu.Unlock()
		return d.notHeld(ctx, flow)
	}
	if !d.acquire(flow) {
		d.mu.Unlock()
		return actionAnswer{Status: http.StatusConflict, Message: "flow " + flow + " is running now: try again when it has finished", Flow: flow}
	}
	d.manual.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.manual.Done()
		defer d.release(flow)
		fn(ctx, stop)
	}()
	return actionAnswer{Status: http.StatusAccepted, Message: what, Flow: flow}
}

func (d *Daemon) runNow(r *http.Request) actionAnswer {
	name := r.PathValue("flow")
	f, ok := d.job(name)
	if !ok {
		return actionAnswer{Status: http.StatusNotFound, Message: "no flow " + name + " in this daemon's config", Flow: name}
	}
	return d.background(name, "run of flow "+name+" started; its result shows here when it has finished", func(ctx context.Context, stop <-chan struct{}) {
		d.runFlowHeld(ctx, f, stop)
	})
}

// deadLetterFlow finds the dead letter under the request's key and its flow.
func (d *Daemon) deadLetterFlow(r *http.Request) (engine.Flow, string, *actionAnswer) {
	key := r.PathValue("key")
	dl, err := d.o.Store.DeadLetter(key)
	if err != nil {
		return engine.Flow{}, key, &actionAnswer{Status: http.StatusInternalServerError, Message: err.Error(), Key: key}
	}
	if dl == nil || dl.Dropped {
		return engine.Flow{}, key, &actionAnswer{Status: http.StatusNotFound, Message: "no dead letter " + key + " (replayed or dropped meanwhile?)", Key: key}
	}
	f, ok := d.job(dl.Flow)
	if !ok {
		return engine.Flow{}, key, &actionAnswer{Status: http.StatusNotFound, Message: "dead letter " + key + " belongs to flow " + dl.Flow + ", which is not in this daemon's config", Key: key}
	}
	return f, key, nil
}

func (d *Daemon) replay(r *http.Request) actionAnswer {
	f, key, bad := d.deadLetterFlow(r)
	if bad != nil {
		return *bad
	}
	a := d.background(f.Name, "replay of "+key+" started; the dead letter leaves the list once the target takes it", func(ctx context.Context, _ <-chan struct{}) {
		ro, end, err := d.leased(f.Name, engine.RunOptions{})
		if err != nil {
			d.o.Logger.Warn().Str(logkey.Flow, f.Name).Err(err).Msg("replay not run: the flow's lease was lost")
			return
		}
		defer end()
		res, err := d.o.Engine.Replay(ctx, f, key, ro)
		d.logResult(f, res, err)
	})
	a.Key = key
	return a
}

func (d *Daemon) drop(r *http.Request) actionAnswer {
	f, key, bad := d.deadLetterFlow(r)
	if bad != nil {
		return *bad
	}
	d.mu.Lock()
	held := d.acquire(f.Name)
	d.mu.Unlock()
	if !held {
		return actionAnswer{Status: http.StatusConflict, Message: "flow " + f.Name + " is running now: try again when it has finished", Flow: f.Name, Key: key}
	}
	defer d.release(f.Name)
	ro, end, err := d.leased(f.Name, engine.RunOptions{})
	if err != nil {
		a := d.notHeld(r.Context(), f.Name)
		a.Key = key
		return a
	}
	defer end()
	st := d.o.Store
	if ro.Store != nil {
		st = ro.Store
	}
	if err := st.DropDeadLetter(key); err != nil {
		return actionAnswer{Status: http.StatusInternalServerError, Message: err.Error(), Flow: f.Name, Key: key}
	}
	return actionAnswer{Message: "dropped " + key + ": it is not retried any more (a later change of the source record is tried afresh)", Flow: f.Name, Key: key}
}
