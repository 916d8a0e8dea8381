// Package daemon runs crmsync as a long-lived service: every flow on its
// cron schedule (github.com/robfig/cron/v3, UTC, panics recovered, a run
// never overlapping itself), an admin HTTP endpoint (health, readiness,
// Prometheus metrics, status) and a graceful shutdown that lets the page in
// hand finish and commit.
package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/cluster"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/webhook"
)

// Job is one scheduled flow.
type Job struct {
	Flow     engine.Flow
	Schedule string
}

// Options configures a Daemon.
type Options struct {
	Engine *engine.Engine
	Store  state.Storage
	Jobs   []Job
	Parser cron.Parser
	Logger zerolog.Logger
	// AdminListen is the admin HTTP address ("" disables it).
	AdminListen string
	// Metrics serves /metrics when non-nil.
	Metrics http.Handler
	// RunAtStart runs every flow once right after start.
	RunAtStart bool
	// ShutdownGrace bounds how long a stop waits for the page in hand
	// before cancelling it (default DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// RunContext, when non-nil, is the parent of the context runs get, in
	// place of Run's ctx without its cancellation: cancelling it cuts the
	// runs in flight at once, grace or not (the CLI cancels it on a second
	// signal). It being done also stops the daemon.
	RunContext context.Context
	// Ready, when non-nil, receives the admin address once listening.
	Ready func(adminAddr string)
	// OnResult, when non-nil, receives every finished run's result (`run
	// --json` prints them). It may be called from several goroutines.
	OnResult func(*engine.Result)
	// Version names the running build (buildinfo.Info.String()); /status,
	// the console and the start-up log show it.
	Version string
	// AdminToken enables the console's changing actions (run now, replay,
	// drop) for requests that carry it; "" refuses them (actions.go).
	AdminToken string
	// Webhooks, when non-nil, is served on WebhookListen (its own
	// listener: it may face the internet, the admin endpoint must not),
	// and its events run flows through Trigger.
	Webhooks      *webhook.Receiver
	WebhookListen string
	// WebhookReady, when non-nil, receives the receiver's address once
	// listening.
	WebhookReady func(addr string)
	// Cluster, when non-nil (a state shared by replicas), leases the
	// flows: this daemon runs only those it holds, each under its lease.
	// Its Options.OnAcquire should call Daemon.OnAcquire. The daemon runs
	// it and stops it after its own runs ended.
	Cluster *cluster.Coordinator
	// Notifier, with Cluster, passes the runs that events ask for to the
	// replica holding the flow.
	Notifier state.Notifier
}

// Daemon is a running scheduler.
type Daemon struct {
	o       Options
	mu      sync.Mutex
	lastErr map[string]string
	// busy holds one token per flow while anything runs it (its schedule,
	// run now, a replay, a drop), so nothing runs beside a flow's run.
	busy map[string]chan struct{}
	// Set by Run for the console's actions: the context and stop channel
	// runs get, whether the daemon is stopping, and the actions in flight.
	runCtx   context.Context
	stop     chan struct{}
	stopping bool
	manual   sync.WaitGroup
	// again marks flows an event asked to run while they were busy: the
	// holder's release starts one more run (see Trigger).
	again map[string]bool
}

// DefaultShutdownGrace is Options.ShutdownGrace when unset.
const DefaultShutdownGrace = 10 * time.Second

// New returns a Daemon.
func New(o Options) *Daemon {
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	d := &Daemon{o: o, lastErr: map[string]string{}, busy: map[string]chan struct{}{}, again: map[string]bool{}}
	for _, j := range o.Jobs {
		d.busy[j.Flow.Name] = make(chan struct{}, 1)
	}
	return d
}

// acquire takes flow's guard if it is free.
func (d *Daemon) acquire(flow string) bool {
	select {
	case d.busy[flow] <- struct{}{}:
		return true
	default:
		return false
	}
}

// release frees flow's guard, and starts the run an event asked for while
// the flow was busy.
func (d *Daemon) release(flow string) {
	d.mu.Lock()
	<-d.busy[flow]
	again := d.again[flow]
	delete(d.again, flow)
	d.mu.Unlock()
	if again {
		d.Trigger(flow)
	}
}

// Trigger runs flow now in the background (a webhook event asked for it),
// or, when something runs it already, once more right after: a change
// that event announced may be past the point the run in progress has read.
// Events for a busy flow fold into that one extra run. It never blocks;
// it does nothing for an unknown flow or while the daemon is not running.
func (d *Daemon) Trigger(flow string) {
	f, ok := d.job(flow)
	if !ok {
		return
	}
	if !d.holds(flow) {
		d.forward(flow)
		return
	}
	d.mu.Lock()
	if d.runCtx == nil || d.stopping {
		d.mu.Unlock()
		return
	}
	ctx, stop := d.runCtx, d.stop
	if !d.acquire(flow) {
		d.again[flow] = true
		d.mu.Unlock()
		return
	}
	d.manual.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.manual.Done()
		defer d.release(flow)
		d.runFlowHeld(ctx, f, stop)
	}()
}

// Run schedules every job and blocks until ctx (or Options.RunContext) is
// done (SIGTERM/SIGINT), then stops taking new runs, lets running ones
// finish their page and commit, and returns nil on a clean stop. Runs that
// outlast the shutdown grace, or whose RunContext is cancelled, are
// cancelled.
func (d *Daemon) Run(ctx context.Context) error {
	log := d.o.Logger
	stop := make(chan struct{})
	// runCtx is cancelled only if a run overstays the shutdown grace, or
	// when RunContext is.
	base := d.o.RunContext
	if base == nil {
		base = context.WithoutCancel(ctx)
	}
	runCtx, cancelRuns := context.WithCancel(base)
	defer cancelRuns()

	clog := cronLogger{log: log}
	// Each job carries cron's Recover; runFlow takes the flow's guard, so
	// the run at start, the schedule and the console's actions never run
	// one flow twice at once.
	c := cron.New(cron.WithLocation(time.UTC), cron.WithParser(d.o.Parser), cron.WithLogger(clog))
	var jobs []cron.Job
	for _, j := range d.o.Jobs {
		j := j
		job := cron.FuncJob(func() { d.runFlow(runCtx, j.Flow, stop) })
		wrapped := cron.NewChain(cron.Recover(clog)).Then(job)
		if _, err := c.AddJob(j.Schedule, wrapped); err != nil {
			return err
		}
		jobs = append(jobs, wrapped)
		log.Info().Str(logkey.Flow, j.Flow.Name).Str("schedule", j.Schedule).Msg("flow scheduled")
	}
	var admin *http.Server
	if d.o.AdminListen != "" {
		ln, err := net.Listen("tcp", d.o.AdminListen)
		if err != nil {
			return err
		}
		admin = &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = admin.Serve(ln) }()
		log.Info().Str("addr", ln.Addr().String()).Str("version", d.o.Version).Msg("admin endpoint listening (/healthz, /readyz, /metrics, /status)")
		if d.o.Ready != nil {
			d.o.Ready(ln.Addr().String())
		}
	} else if d.o.Ready != nil {
		d.o.Ready("")
	}
	d.mu.Lock()
	d.runCtx, d.stop = runCtx, stop
	d.mu.Unlock()
	hooks, err := d.startWebhooks()
	if err != nil {
		if admin != nil {
			_ = admin.Close()
		}
		return err
	}
	stopCluster := d.startCluster()
	defer stopCluster()
	c.Start()
	var startWG sync.WaitGroup
	if d.o.RunAtStart {
		for _, j := range jobs {
			startWG.Add(1)
			go func(j cron.Job) { defer startWG.Done(); j.Run() }(j)
		}
	}
	select {
	case <-ctx.Done():
	case <-runCtx.Done():
	}
	log.Info().Dur("grace", d.o.ShutdownGrace).Msg("stop requested: finishing the page in hand")
	hooks.stop()
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	close(stop)
	done := c.Stop()
	waitAll := make(chan struct{})
	go func() { <-done.Done(); startWG.Wait(); d.manual.Wait(); close(waitAll) }()
	grace := time.NewTimer(d.o.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-waitAll:
	case <-runCtx.Done():
		// Cancelled from outside (a second signal, or the caller's grace
		// ran out first): the runs return now.
		select {
		case <-waitAll:
		default:
			log.Warn().Msg("runs cancelled before they finished (their pages are not committed and will be replayed)")
			<-waitAll
		}
	case <-grace.C:
		log.Warn().Dur("grace", d.o.ShutdownGrace).Msg("runs did not finish in time: cancelling them (their pages are not committed and will be replayed)")
		cancelRuns()
		<-waitAll
	}
	stopCluster() // after the runs: their leases were renewed meanwhile
	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = admin.Shutdown(sctx)
		cancel()
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

func (d *Daemon) runFlow(ctx context.Context, f engine.Flow, stop <-chan struct{}) {
	select {
	case <-stop:
		return
	default:
	}
	if !d.acquire(f.Name) {
		d.o.Logger.Info().Str(logkey.Flow, f.Name).Msg("run skipped: the flow is still running")
		return
	}
	defer d.release(f.Name)
	d.runFlowHeld(ctx, f, stop)
}

// runFlowHeld runs f once; the caller holds its guard.
func (d *Daemon) runFlowHeld(ctx context.Context, f engine.Flow, stop <-chan struct{}) {
	ro, end, err := d.leased(f.Name, engine.RunOptions{Mode: engine.ModeSync, Stop: stop})
	if err != nil {
		d.o.Logger.Debug().Str(logkey.Flow, f.Name).Err(err).Msg("run skipped: another replica holds the flow")
		return
	}
	defer end()
	res, err := d.o.Engine.Run(ctx, f, ro)
	d.logResult(f, res, err)
}

// logResult records a finished run's error for /readyz, logs its counts
// and hands it to OnResult.
func (d *Daemon) logResult(f engine.Flow, res *engine.Result, err error) {
	log := d.o.Logger.With().Str(logkey.Flow, f.Name).Logger()
	d.mu.Lock()
	switch {
	case res.Mode != engine.ModeSync: // a replay says nothing of the flow's health
	case err != nil:
		d.lastErr[f.Name] = err.Error()
	default:
		delete(d.lastErr, f.Name)
	}
	d.mu.Unlock()
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	for sys, c := range res.Systems {
		ev = ev.Dict(sys, zerolog.Dict().Int("pulled", c.Pulled).Int("created", c.Created).Int("linked", c.Linked).Int("updated", c.Updated).
			Int("converted", c.Converted).Int("unchanged", c.Unchanged).Int("skipped", c.Skipped).Int("failed", c.Failed))
	}
	ev.Str(logkey.Mode, string(res.Mode)).Dur("took", res.Finished.Sub(res.Started)).Bool("stopped", res.Stopped).Msg("flow run finished")
	if d.o.OnResult != nil {
		d.o.OnResult(res)
	}
}

func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.console)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		errs := make(map[string]string, len(d.lastErr))
		for k, v := range d.lastErr {
			if d.holds(k) { // a flow another replica runs now is its to report
				errs[k] = v
			}
		}
		d.mu.Unlock()
		body := map[string]any{"ready": len(errs) == 0, "failing_flows": errs}
		if d.o.Cluster != nil {
			st := d.o.Cluster.Status()
			body["replica"], body["held_flows"], body["replicas"] = st.Replica, st.Held, len(st.Replicas)
		}
		w.Header().Set("Content-Type", "application/json")
		if len(errs) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		flows := make([]engine.Flow, len(d.o.Jobs))
		for i, j := range d.o.Jobs {
			flows[i] = j.Flow
		}
		st, err := engine.Status(d.o.Store, flows)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		body := map[string]any{"version": d.o.Version, "flows": st}
		if d.o.Cluster != nil {
			cs := d.o.Cluster.Status()
			hs, _ := d.o.Cluster.Holders(r.Context())
			body["cluster"] = map[string]any{"replica": cs.Replica, "held_flows": cs.Held, "replicas": cs.Replicas, "leases": hs}
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	if d.o.Metrics != nil {
		mux.Handle("GET /metrics", d.o.Metrics)
	}
	d.actionRoutes(mux)
	return mux
}

// cronLogger adapts zerolog to cron.Logger (cron's default prints to stdout).
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug().Fields(kv).Msg("cron: " + msg) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}

var _ cron.Logger = cronLogger{}

// hookServer is the running webhook receiver (zero when there is none).
type hookServer struct {
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// startWebhooks listens for webhook events and starts their dispatcher.
func (d *Daemon) startWebhooks() (hookServer, error) {
	if d.o.Webhooks == nil || d.o.WebhookListen == "" {
		return hookServer{}, nil
	}
	ln, err := net.Listen("tcp", d.o.WebhookListen)
	if err != nil {
		return hookServer{}, err
	}
	h := hookServer{srv: &http.Server{Handler: d.o.Webhooks.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}, done: make(chan struct{})}
	var ctx context.Context
	ctx, h.cancel = context.WithCancel(context.Background())
	go func() { _ = h.srv.Serve(ln) }()
	go func() { defer close(h.done); d.o.Webhooks.Run(ctx, d.Trigger) }()
	d.o.Logger.Info().Str("addr", ln.Addr().String()).Msg("webhook receiver listening (POST /webhooks/{system}, POST /hooks/{flow})")
	if d.o.WebhookReady != nil {
		d.o.WebhookReady(ln.Addr().String())
	}
	return h, nil
}

// stop refuses new events (the sender retries, or the schedule picks the
// change up), then stops the dispatcher.
func (h hookServer) stop() {
	if h.srv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = h.srv.Shutdown(sctx)
	cancel()
	h.cancel()
	<-h.done
}
