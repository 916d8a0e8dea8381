package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/buildinfo"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/daemon"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/metrics"
	"github.com/crmsync/crmsync/state"
)

func newRunCmd(g *globals) *cobra.Command {
	var admin string
	var noStartRun, jsonOut bool
	c := &cobra.Command{
		Use:   "run",
		Short: "Run every flow on its cron schedule until SIGTERM/SIGINT",
		Long: `Run as a service: every flow runs once at start, then on its schedule (UTC),
never overlapping itself. The admin endpoint serves /healthz, /readyz,
/metrics (Prometheus) and /status. On SIGTERM or SIGINT the page in hand
is finished and committed, then crmsync exits 0; runs still going after the
shutdown grace (shutdown_grace, --shutdown-grace) are cancelled. A second
signal cancels them at once and exits 130.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			grace, err := g.shutdownGrace(cmd, cfg)
			if err != nil {
				return err
			}
			log := g.logger(cfg)
			m := metrics.New(buildinfo.Read())
			a, err := app.Open(cfg, log, app.Options{StatePath: g.state, Metrics: m, Observe: m.HTTP})
			if err != nil {
				return err
			}
			defer a.Close()
			flows, err := app.Flows(cfg, nil)
			if err != nil {
				return err
			}
			if err := primeMetrics(m, a.Store, flows); err != nil {
				return err
			}
			jobs := make([]daemon.Job, len(flows))
			for i, f := range flows {
				fc, ok := cfg.Flow(f.Name) // by name, not by position in the list
				if !ok {
					return fmt.Errorf("flow %q has no configuration", f.Name)
				}
				jobs[i] = daemon.Job{Flow: f, Schedule: fc.Schedule}
			}
			listen := cfg.Admin.Listen
			if cmd.Flags().Changed("admin") {
				listen = admin
			}
			// The daemon stops when stop closes (first signal); its runs get
			// runCtx, cancelled when the grace ends or at a second signal.
			runCtx, stop, finish := handleSignals(cmd.Context(), grace, log, g.env.Stderr)
			defer finish()
			stopCtx, stopped := context.WithCancel(runCtx)
			defer stopped()
			go func() {
				select {
				case <-stop:
					stopped()
				case <-stopCtx.Done():
				}
			}()
			do := daemon.Options{Engine: a.Engine, Store: a.Store, Jobs: jobs, Parser: config.ScheduleParser(),
				Logger: log, AdminListen: listen, Metrics: m.Handler(), RunAtStart: !noStartRun, ShutdownGrace: grace, RunContext: runCtx,
				Version: buildinfo.Read().String(), AdminToken: a.Cfg.Admin.Token.Value()}
			if rcv := a.Webhooks(flows, log, m.Webhook); rcv != nil {
				do.Webhooks, do.WebhookListen = rcv, cfg.Webhooks.Listen
			}
			if jsonOut {
				do.OnResult = jsonLines(g.env.Stdout)
			}
			var d *daemon.Daemon
			coord, err := a.Cluster(flows, false, buildinfo.Read().String()+" admin="+listen, func(fl []string) { d.OnAcquire(fl) })
			if err != nil {
				return err
			}
			do.Cluster = coord
			if n, ok := a.Store.(state.Notifier); ok && coord != nil {
				do.Notifier = n
			}
			d = daemon.New(do)
			err = d.Run(stopCtx)
			if ierr := finish(); ierr != nil {
				return ierr
			}
			return err
		},
	}
	g.addConfigFlags(c, true)
	c.Flags().StringVar(&admin, "admin", "", "admin HTTP address (overrides admin.listen; empty disables)")
	c.Flags().BoolVar(&noStartRun, "no-start-run", false, "do not run every flow once at start; wait for the schedule")
	c.Flags().BoolVar(&jsonOut, "json", false, "print every finished run's result on stdout as one JSON line (JSON Lines; logs stay on stderr)")
	g.addShutdownFlag(c)
	return c
}

func newStatusCmd(g *globals) *cobra.Command {
	var admin string
	c := &cobra.Command{
		Use:   "status",
		Short: "Show each flow's cursor, last run, counts, error and dead letters",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			path := cfg.State
			if g.state != "" {
				path = g.state
			}
			if noState(path) {
				flows, _ := app.Flows(cfg, nil)
				sts := make([]engine.FlowStatus, len(flows))
				for i, f := range flows {
					sts[i] = engine.FlowStatus{Flow: f.Name, Source: f.Source}
					for _, t := range f.Targets {
						sts[i].Targets = append(sts[i].Targets, t.System)
					}
				}
				if g.jsonOut {
					return writeJSON(g.env.Stdout, map[string]any{"state": state.Describe(path), "flows": sts, "new": true})
				}
				writeStatus(g.env.Stdout, state.Describe(path)+" (no state yet: no flow has run)", sts)
				return nil
			}
			st, err := app.OpenState(cmd.Context(), path, true)
			if err != nil {
				if !errors.Is(err, state.ErrLocked) {
					return err
				}
				listen := cfg.Admin.Listen
				if cmd.Flags().Changed("admin") {
					listen = admin
				}
				if listen == "" {
					return fmt.Errorf("%w (a running `crmsync run` shows the same on its admin endpoint: GET /status; pass --admin ADDR if it listens somewhere the config does not say)", err)
				}
				// The daemon holds the file: ask it instead.
				sts, aerr := adminStatus(cmd.Context(), listen)
				if aerr != nil {
					return fmt.Errorf("%w; asking the daemon's admin endpoint %s failed too: %v (pass --admin ADDR if it listens elsewhere)", err, listen, aerr)
				}
				if g.jsonOut {
					return writeJSON(g.env.Stdout, map[string]any{"state": state.Describe(path), "flows": sts, "via": "admin endpoint"})
				}
				writeStatus(g.env.Stdout, state.Describe(path)+" (held by the running daemon; read from its admin endpoint "+listen+")", sts)
				return nil
			}
			defer st.Close()
			flows, _ := app.Flows(cfg, nil)
			sts, err := engine.Status(st, flows)
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(g.env.Stdout, map[string]any{"state": state.Describe(path), "flows": sts})
			}
			writeStatus(g.env.Stdout, state.Describe(path), sts)
			return nil
		},
	}
	g.addConfigFlags(c, true)
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	c.Flags().StringVar(&admin, "admin", "", "admin address of a running daemon to ask when it holds the state file (default: the config's admin.listen)")
	return c
}

// adminStatus reads GET /status from a running daemon's admin endpoint.
func adminStatus(ctx context.Context, listen string) ([]engine.FlowStatus, error) {
	status, body, err := adminGet(ctx, listen, "/status")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("admin endpoint: %d %s", status, http.StatusText(status))
	}
	var out struct {
		Flows []engine.FlowStatus `json:"flows"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Flows, nil
}

// adminGet reads one path of a daemon's admin endpoint at listen (an
// address it listens on all interfaces with is asked on loopback).
func adminGet(ctx context.Context, listen, path string) (int, []byte, error) {
	return adminDo(ctx, http.MethodGet, listen, path, "")
}

// adminDo sends one request to a daemon's admin endpoint, with token as a
// Bearer token when non-empty.
func adminDo(ctx context.Context, method, listen, path, token string) (int, []byte, error) {
	host := listen
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, ":") {
		host = "127.0.0.1:" + host[strings.LastIndex(host, ":")+1:]
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

func newValidateCmd(g *globals) *cobra.Command {
	return newCheckCmd(g, false)
}

// newCheckCmd builds `validate` (offline unless --online) or `check` (always
// online): the same checks, one command an admin runs after editing a file,
// the other an operator runs when a system seems unreachable.
func newCheckCmd(g *globals, alwaysOnline bool) *cobra.Command {
	var online bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration and every mapping; print ok or every problem with file:line",
		Long: `Check the configuration and every mapping, and print ok or every problem with
file:line. With --online, also make one small authenticated read of every
system (the first record of a pull), so a wrong URL, a refused token or an API
that is down shows now, not at the first sync that has something to write.
Exit status 1 when anything is wrong.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			online = online || alwaysOnline
			type reach struct {
				System string `json:"system"`
				OK     bool   `json:"ok"`
				TookMS int64  `json:"took_ms"`
				Error  string `json:"error,omitempty"`
				Fix    string `json:"fix,omitempty"`
			}
			report := func(probs []problem, sys []reach) error {
				ok := len(probs) == 0
				for _, r := range sys {
					ok = ok && r.OK
				}
				if g.jsonOut {
					if err := writeJSON(g.env.Stdout, map[string]any{"ok": ok, "problems": probs, "systems": sys}); err != nil {
						return err
					}
				} else if ok {
					fmt.Fprintln(g.env.Stdout, "ok")
				}
				if !ok {
					return &ExitError{Code: 1}
				}
				return nil
			}
			cfg, err := config.Load(g.config, g.env.Types)
			var systems map[string]*engine.System
			if err == nil {
				systems, err = app.BuildSystems(cfg, g.logger(cfg), nil)
			}
			if err != nil {
				if !g.jsonOut {
					fmt.Fprintln(g.env.Stdout, err)
				}
				return report(problems(err), nil)
			}
			if !online {
				return report(nil, nil)
			}
			sys := []reach{}
			for _, r := range app.CheckOnline(cmd.Context(), systems, timeout) {
				took := r.Took.Round(time.Millisecond)
				sys = append(sys, reach{System: r.System, OK: r.Err == nil, TookMS: took.Milliseconds()})
				if r.Err != nil {
					sys[len(sys)-1].Error = r.Err.Error()
					sys[len(sys)-1].Fix = r.Fix()
				}
				if g.jsonOut {
					continue
				}
				if r.Err != nil {
					fmt.Fprintf(g.env.Stdout, "%-12s FAILED after %s: %v\n", r.System, took, r.Err)
					if fix := r.Fix(); fix != "" {
						fmt.Fprintf(g.env.Stdout, "%-12s fix: %s\n", "", fix)
					}
				} else {
					fmt.Fprintf(g.env.Stdout, "%-12s ok (answered in %s)\n", r.System, took)
				}
			}
			return report(nil, sys)
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().BoolVar(&g.jsonOut, "json", false, `print {"ok", "problems": [{file, line, message}], "systems": [{system, ok, took_ms, error, fix}]}`)
	if alwaysOnline {
		c.Use = "check"
		c.Short = "Check the configuration, the mappings and every system online; say what to fix"
		c.Long = `Check the configuration and every mapping (as validate does), then make one
small authenticated read of every system, and print one line per system: ok
with the time it took, or FAILED with the API's error and what to fix (the
token, the URL, the network, the API user's permissions). Write permission is
not tested: no vendor API answers it without writing. Secrets never appear in
the output. Exit status 1 when anything is wrong.`
		c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long each system may take")
		return c
	}
	c.Flags().BoolVar(&online, "online", false, "also make one authenticated read of every system (as check does)")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "with --online: how long each system may take")
	return c
}

// primeMetrics gives the daemon's metrics what the state file knows before
// the first run ends (see metrics.Prime): last successes, owed writes.
func primeMetrics(m *metrics.Metrics, st state.Storage, flows []engine.Flow) error {
	sts, err := engine.Status(st, flows)
	if err != nil {
		return err
	}
	out := make([]metrics.Flow, len(sts))
	for i, s := range sts {
		out[i] = metrics.Flow{Name: s.Flow, Source: s.Source, Targets: s.Targets, DeadLetters: s.DeadLetters, Pending: s.Pending}
		runs, err := st.Runs(s.Flow, 0)
		if err != nil {
			return err
		}
		if len(runs) > 0 { // newest first
			out[i].LastAttempt = runs[0].Finished
		}
		for _, r := range runs {
			if r.Error == "" && r.Mode == string(engine.ModeSync) {
				out[i].LastSuccess = r.Finished
				break
			}
		}
	}
	m.Prime(out)
	return nil
}

// jsonLines returns an OnResult that writes each result to w as one JSON
// line, whole lines only, whatever goroutine finished the run.
func jsonLines(w io.Writer) func(*engine.Result) {
	var mu sync.Mutex
	return func(res *engine.Result) {
		b, err := json.Marshal(res)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(append(b, '\n'))
	}
}
