package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/engine"
)

// proc is a running crmsync binary.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// startProc starts the built binary with args.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill() // only our own child, by its pid
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("crmsync did not exit within %s\n--- stdout\n%s--- stderr\n%s", within, p.stdout.String(), p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// adminAddr waits for the daemon's "admin endpoint listening" log line
// (JSON logs) and returns the address.
func (p *proc) adminAddr() string {
	p.t.Helper()
	var addr string
	waitFor(p.t, 30*time.Second, "the admin endpoint to listen", func() bool {
		if p.exited() {
			p.t.Fatalf("crmsync exited early:\n%s", p.stderr.String())
		}
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		for sc.Scan() {
			var l struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasPrefix(l.Message, "admin endpoint listening") && l.Addr != "" {
				addr = l.Addr
				return true
			}
		}
		return false
	})
	return addr
}

// get fetches an admin URL; status 0 when the request failed.
func get(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProcessRunServesAdminAndStopsOnSIGTERM: `crmsync run` serves
// /healthz, /metrics and /status while running, syncs at start, and on
// SIGTERM exits 0 with the run recorded in the state file.
func TestProcessRunServesAdminAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	const seed = 15
	// A free port for the admin endpoint, written into the config: `status`
	// finds the running daemon there.
	e := newEnv(t, envOptions{Seed: seed})
	p, adminAddr := startRunOnFreePort(t, e)
	base := "http://" + p.adminAddr()

	if st, body := get(base + "/healthz"); st != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q", st, body)
	}
	// The run at start finishes and shows on /status.
	var status struct {
		Flows []struct {
			Flow    string          `json:"flow"`
			Cursor  json.RawMessage `json:"cursor"`
			LastRun *struct {
				Counts map[string]map[string]int
				Error  string
			} `json:"last_run"`
		} `json:"flows"`
	}
	waitFor(t, 30*time.Second, "/status to show the first run", func() bool {
		st, body := get(base + "/status")
		if st != http.StatusOK || json.Unmarshal([]byte(body), &status) != nil {
			return false
		}
		return len(status.Flows) == 1 && status.Flows[0].LastRun != nil
	})
	if f := status.Flows[0]; f.Flow != flowName || f.LastRun.Error != "" || f.LastRun.Counts[bluerocktel.System]["created"] != seed || string(f.Cursor) == "null" {
		t.Errorf("/status: flow %s, cursor %s, last run %+v; want %d created and no error", f.Flow, f.Cursor, *f.LastRun, seed)
	}
	if st, page := get(base + "/"); st != http.StatusOK || !strings.Contains(page, "<b>"+flowName+"</b>") || !strings.Contains(page, "pending writes") {
		t.Errorf("operator console GET /: %d\n%.1500s", st, page)
	}
	st, metrics := get(base + "/metrics")
	if st != http.StatusOK || !strings.Contains(metrics, "crmsync_records_total") {
		t.Errorf("/metrics: %d, crmsync_records_total missing:\n%.2000s", st, metrics)
	}
	if !strings.Contains(metrics, `go_build_info{`) {
		t.Errorf("/metrics has no go_build_info: an operator cannot tell which build runs")
	}
	if !strings.Contains(metrics, `crmsync_dead_letters{flow="`+flowName+`"} 0`) {
		t.Errorf("/metrics lacks the dead-letter gauge at 0:\n%.2000s", metrics)
	}
	if !strings.Contains(metrics, `outcome="created"`) {
		t.Errorf("/metrics does not count the created records:\n%.2000s", metrics)
	}
	if st, body := get(base + "/readyz"); st != http.StatusOK {
		t.Errorf("/readyz after a good run: %d %s", st, body)
	}
	// The daemon holds the state file; `status` asks its admin endpoint.
	if r := e.cli("status"); r.Code != 0 || !strings.Contains(r.Stdout, "held by the running daemon") || !strings.Contains(r.Stdout, fmt.Sprintf("created %d", seed)) {
		t.Errorf("status while the daemon runs: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	// `crmsync health` (the image's HEALTHCHECK) answers from the endpoint.
	if r := runCLI(context.Background(), "health", "--admin", adminAddr); r.Code != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Errorf("health: %s", r)
	}
	if r := runCLI(context.Background(), "health", "--admin", adminAddr, "--ready"); r.Code != 0 {
		t.Errorf("health --ready after a good run: %s", r)
	}
	if r := runCLI(context.Background(), "health", "--admin", "127.0.0.1:1"); r.Code != 1 || !strings.Contains(r.Stderr, "127.0.0.1:1") {
		t.Errorf("health at a wrong address: %s", r)
	}
	// --admin overrides the config's address, and a failed lookup says why.
	if r := e.cli("status", "--admin", "127.0.0.1:1"); r.Code == 0 || !strings.Contains(r.Stderr, "asking the daemon's admin endpoint 127.0.0.1:1 failed too") {
		t.Errorf("status --admin at a wrong address: exit %d\n%s", r.Code, r.Stderr)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("crmsync run exited %d on SIGTERM\n%s", code, p.stderr.String())
	}
	s := e.status()
	if s.Flows[0].LastRun == nil || s.Flows[0].LastRun.Counts[bluerocktel.System]["created"] != seed {
		t.Errorf("state after SIGTERM: last run %+v, want %d created", s.Flows[0].LastRun, seed)
	}
	if n := len(e.blueRecords()); n != seed {
		t.Errorf("BlueRockTel holds %d records, want %d", n, seed)
	}

	// A restarted daemon serves, before its first run ends, the series the
	// usual alerts read: the last success from the state file, the run and
	// failure counters at 0 (issue 11: they were absent until a run ended).
	p = startProc(t, "run", "--config", e.cfgPath, "--log-format", "json", "--no-start-run")
	base = "http://" + p.adminAddr()
	_, metrics = get(base + "/metrics")
	for _, want := range []string{`crmsync_last_success_timestamp_seconds{flow="` + flowName + `"} 1.`,
		`crmsync_runs_total{flow="` + flowName + `",mode="sync",result="error"} 0`,
		`crmsync_records_total{flow="` + flowName + `",outcome="failed",system="bluerocktel"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics of a restarted daemon lacks %s", want)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("restarted crmsync run exited %d on SIGTERM\n%s", code, p.stderr.String())
	}
}

// TestProcessSIGTERMMidPageCommitsThePage: SIGTERM while a page is being
// written lets that page finish, commits it and exits 0; the next sync
// picks up from there without creating anything twice.
func TestProcessSIGTERMMidPageCommitsThePage(t *testing.T) {
	t.Parallel()
	const seed = 40
	g := newGate()
	t.Cleanup(g.Open)
	e := newEnv(t, envOptions{Seed: seed, Front: map[string]func(http.Handler) http.Handler{bluerocktel.System: g.wrap}})
	p := startProc(t, "run", "--config", e.cfgPath, "--admin", "", "--log-format", "json")
	waitFor(t, 30*time.Second, "the first page to reach BlueRockTel", func() bool {
		if p.exited() {
			t.Fatalf("crmsync exited early:\n%s", p.stderr.String())
		}
		return g.Waiting() > 0
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "crmsync to acknowledge the stop", func() bool {
		return strings.Contains(p.stderr.String(), "stop requested")
	})
	if p.exited() {
		t.Fatalf("crmsync exited before the page in hand was written:\n%s", p.stderr.String())
	}
	g.Open()
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("crmsync run exited %d on SIGTERM\n%s", code, p.stderr.String())
	}
	s := e.status()
	run := s.Flows[0].LastRun
	if run == nil || run.Error != "" {
		t.Fatalf("state after SIGTERM: last run %+v, want a run without error", run)
	}
	first := run.Counts[bluerocktel.System]["created"]
	if first < 1 || first >= seed {
		t.Errorf("the stopped run created %d of %d records in BlueRockTel; want the page in hand only", first, seed)
	}
	if n := len(e.blueRecords()); n != first {
		t.Errorf("BlueRockTel holds %d records, the state says %d were created", n, first)
	}
	if string(s.Flows[0].Cursor) == "null" {
		t.Errorf("no cursor committed for the page in hand")
	}
	r := e.sync()
	if c := counts(t, r, bluerocktel.System); c.Created != seed-first || c.Failed != 0 {
		t.Errorf("the next sync: bluerocktel %+v, want %d created", c, seed-first)
	}
	e.assertBlueRockTelHolds(t, seed, "")
}

// TestProcessDemo: `crmsync demo` runs its three steps from the binary
// alone and exits 0.
func TestProcessDemo(t *testing.T) {
	t.Parallel()
	p := startProc(t, "demo", "--seed", "20")
	if code := p.wait(120 * time.Second); code != 0 {
		t.Fatalf("demo exited %d\n--- stdout\n%s--- stderr\n%s", code, p.stdout.String(), p.stderr.String())
	}
	out := p.stdout.String()
	steps := []string{"== 1. first sync", "== 2. second sync", "== 3. renamed an organisation"}
	for _, s := range steps {
		if !strings.Contains(out, s) {
			t.Errorf("demo output lacks %q:\n%s", s, out)
		}
	}
	// Step 3 shows exactly one update in each target.
	if i := strings.Index(out, steps[2]); i >= 0 {
		for _, sys := range []string{"bluerocktel", "overplane"} {
			found := false
			col := map[string]int{} // column name -> field index, from the table's header
			for _, l := range strings.Split(out[i:], "\n") {
				f := strings.Fields(l)
				if len(f) > 0 && f[0] == "system" && len(col) == 0 {
					for j, name := range f {
						col[name] = j
					}
					continue
				}
				if len(f) == len(col) && len(col) > 0 && f[0] == sys {
					found = true
					if f[col["created"]] != "0" || f[col["updated"]] != "1" || f[col["failed"]] != "0" {
						t.Errorf("demo step 3, %s: %q; want 0 created, 1 updated, 0 failed", sys, l)
					}
				}
			}
			if !found {
				t.Errorf("demo step 3 shows no row for %s:\n%s", sys, out[i:])
			}
		}
	}
	if strings.Contains(out, "FAILED") {
		t.Errorf("demo reports a failure:\n%s", out)
	}
}

// TestProcessDemoJSON: `crmsync demo --json` prints one JSON document with
// the three steps' counts: step 1 creates every seeded record in
// BlueRockTel, step 2 writes nothing, step 3 updates one record per target.
func TestProcessDemoJSON(t *testing.T) {
	p := startProc(t, "demo", "--seed", "12", "--json")
	if code := p.wait(120 * time.Second); code != 0 {
		t.Fatalf("demo --json exited %d\n--- stdout\n%s--- stderr\n%s", code, p.stdout.String(), p.stderr.String())
	}
	var doc struct {
		Steps []struct {
			Title string `json:"title"`
			Flows map[string]struct {
				Systems map[string]engine.Counts `json:"systems"`
			} `json:"flows"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(p.stdout.String()), &doc); err != nil {
		t.Fatalf("demo --json is not one JSON document: %v\n%s", err, p.stdout.String())
	}
	if len(doc.Steps) != 3 {
		t.Fatalf("%d steps, want 3", len(doc.Steps))
	}
	sum := func(step int, sys string) engine.Counts {
		var c engine.Counts
		for _, f := range doc.Steps[step].Flows {
			s := f.Systems[sys]
			c.Created += s.Created
			c.Updated += s.Updated
			c.Failed += s.Failed
		}
		return c
	}
	if c := sum(0, bluerocktel.System); c.Created != 12 || c.Failed != 0 {
		t.Errorf("step 1, bluerocktel: %+v, want 12 created", c)
	}
	for _, sys := range []string{bluerocktel.System, "overplane"} {
		if c := sum(1, sys); c.Created+c.Updated != 0 {
			t.Errorf("step 2, %s wrote: %+v", sys, c)
		}
		if c := sum(2, sys); c.Updated != 1 || c.Created != 0 {
			t.Errorf("step 3, %s: %+v, want exactly one update", sys, c)
		}
	}
}

// TestProcessRunJSONPrintsOneLinePerRun: `crmsync run --json` prints each
// finished run on stdout as one JSON line (the logs stay on stderr), so a
// script can follow the service's results.
func TestProcessRunJSONPrintsOneLinePerRun(t *testing.T) {
	const seed = 9
	e := newEnv(t, envOptions{Seed: seed})
	p := startProc(t, "run", "--config", e.cfgPath, "--admin", "", "--json")
	var res engine.Result
	waitFor(t, 30*time.Second, "the first run's JSON line", func() bool {
		line, _, ok := strings.Cut(p.stdout.String(), "\n")
		return ok && json.Unmarshal([]byte(line), &res) == nil
	})
	if res.Flow != flowName || res.Error != "" || res.Systems[bluerocktel.System] == nil || res.Systems[bluerocktel.System].Created != seed {
		t.Errorf("run --json, first line: %+v; want flow %s with %d created in bluerocktel", res, flowName, seed)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM:\n%s", code, p.stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("stdout line is not JSON: %q", l)
		}
	}
}

// startRunOnFreePort writes a free port into the config's admin.listen
// (the example's 127.0.0.1:9090) and starts `crmsync run` on it. The port is
// free when picked but may be taken by another test before the daemon
// binds it: then another is picked.
func startRunOnFreePort(t *testing.T, e *testEnv) (*proc, string) {
	t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		e.writeConfig(strings.Replace(string(b), "127.0.0.1:9090", addr, 1))
		p := startProc(t, "run", "--config", e.cfgPath, "--log-format", "json")
		bound := false
		waitFor(t, 30*time.Second, "the admin endpoint to listen", func() bool {
			if p.exited() {
				return true
			}
			bound = strings.Contains(p.stderr.String(), "admin endpoint listening")
			return bound
		})
		if bound {
			return p, addr
		}
		if attempt == 3 || !strings.Contains(p.stderr.String(), "address already in use") {
			t.Fatalf("crmsync run exited early:\n%s", p.stderr.String())
		}
	}
}
