package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
)

// Shutdown while a request hangs: BlueRockTel sits behind a gate that holds
// every request until the client gives up (its timeout is 60s in the
// example config, with retries), so only crmsync's own shutdown can end the
// run in time.

// hungEnv is a test environment whose BlueRockTel requests hang, with
// shutdown_grace set to grace.
func hungEnv(t *testing.T, seed int, grace string) (*testEnv, *gate) {
	t.Helper()
	g := newGate()
	t.Cleanup(g.Open)
	e := newEnv(t, envOptions{Seed: seed, Front: map[string]func(http.Handler) http.Handler{bluerocktel.System: g.wrap},
		Edit: func(s string) string {
			if !strings.Contains(s, "shutdown_grace: 10s") {
				t.Fatal("config.example.yaml no longer sets shutdown_grace: 10s; update the test")
			}
			return strings.Replace(s, "shutdown_grace: 10s", "shutdown_grace: "+grace, 1)
		}})
	return e, g
}

// startHung starts crmsync with args and waits until a request hangs at
// BlueRockTel.
func startHung(t *testing.T, g *gate, args ...string) *proc {
	t.Helper()
	p := startProc(t, args...)
	waitFor(t, 30*time.Second, "a request to hang at BlueRockTel", func() bool {
		if p.exited() {
			t.Fatalf("crmsync exited early:\n%s", p.stderr.String())
		}
		return g.Waiting() > 0
	})
	return p
}

func (p *proc) signal(s syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// waitLog waits for a log line containing s on stderr.
func (p *proc) waitLog(s string) {
	p.t.Helper()
	waitFor(p.t, 10*time.Second, "the log line "+s, func() bool { return strings.Contains(p.stderr.String(), s) })
}

// TestProcessSIGTERMDuringHungRequestEndsAfterGrace: `crmsync sync` with a
// request hanging stops within shutdown_grace (1s) of SIGTERM, not after the
// request's own timeouts, and says why.
func TestProcessSIGTERMDuringHungRequestEndsAfterGrace(t *testing.T) {
	t.Parallel()
	e, g := hungEnv(t, 15, "1s")
	p := startHung(t, g, "sync", "--config", e.cfgPath)
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(20 * time.Second)
	took := time.Since(sent)
	stderr := p.stderr.String()
	if took < time.Second {
		t.Errorf("exited %s after SIGTERM, before the 1s grace ended", took)
	}
	if took > 10*time.Second {
		t.Errorf("exited %s after SIGTERM with a 1s grace", took)
	}
	// The hang was BlueRockTel's read before its first creates: the cut
	// writes are kept pending, the rest of the page is committed, and the
	// run ends stopped early with writes owed: exit status 3.
	if code != 3 {
		t.Errorf("exit status %d, want 3 (stopped early, writes left pending)\n%s", code, stderr)
	}
	if out := p.stdout.String(); !strings.Contains(out, "stopped early") || !strings.Contains(out, "bluerocktel owes:") {
		t.Errorf("the summary does not say the run stopped early with BlueRockTel's writes pending:\n%s", out)
	}
	for _, want := range []string{
		"stopping: finishing the page in hand (up to 1s); send the signal again to stop at once",
		"did not finish within 1s: cancelling its requests (uncommitted work will be resumed by the next run)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "interrupted twice") {
		t.Errorf("one signal reported as two:\n%s", stderr)
	}
}

// TestProcessSecondSIGTERMExits130: a second SIGTERM during the grace
// (1 minute here) stops `crmsync sync` at once with exit status 130; the
// next sync does the work left.
func TestProcessSecondSIGTERMExits130(t *testing.T) {
	t.Parallel()
	const seed = 15
	e, g := hungEnv(t, seed, "1m")
	p := startHung(t, g, "sync", "--config", e.cfgPath)
	p.signal(syscall.SIGTERM)
	p.waitLog("stopping: finishing the page in hand (up to 1m0s)")
	if p.exited() {
		t.Fatalf("crmsync exited on the first signal with a request hanging and a 1m grace:\n%s", p.stderr.String())
	}
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	code := p.wait(20 * time.Second)
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("exited %s after the second SIGTERM, want at once", took)
	}
	stderr := p.stderr.String()
	if code != 130 {
		t.Errorf("exit status %d after two SIGTERMs, want 130\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "interrupted twice") || !strings.Contains(stderr, "uncommitted work will be resumed by the next run") {
		t.Errorf("stderr does not explain the second signal:\n%s", stderr)
	}
	t.Logf("--- stdout\n%s--- stderr\n%s", p.stdout.String(), stderr)

	g.Open()
	r := e.sync()
	if c := counts(t, r, bluerocktel.System); c.Failed != 0 {
		t.Errorf("the next sync: bluerocktel %+v, want no failures", c)
	}
	e.assertBlueRockTelHolds(t, seed, " after the next sync")
}

// TestProcessRunShutdownGraceAndSecondSignal: `crmsync run` bounds its stop
// by shutdown_grace (exit 0) and a second signal stops it at once (130).
func TestProcessRunShutdownGraceAndSecondSignal(t *testing.T) {
	t.Parallel()
	t.Run("grace", func(t *testing.T) {
		t.Parallel() // an environment of its own
		e, g := hungEnv(t, 5, "1s")
		p := startHung(t, g, "run", "--config", e.cfgPath, "--admin", "", "--log-format", "json")
		sent := time.Now()
		p.signal(syscall.SIGTERM)
		code := p.wait(20 * time.Second)
		if took := time.Since(sent); took < time.Second || took > 10*time.Second {
			t.Errorf("exited %s after SIGTERM with a 1s grace", took)
		}
		if code != 0 {
			t.Errorf("exit status %d, want 0\n%s", code, p.stderr.String())
		}
		if s := p.stderr.String(); !strings.Contains(s, "stopping: finishing the page in hand (up to 1s)") || !strings.Contains(s, "stopped cleanly") {
			t.Errorf("stderr lacks the stop and its end:\n%s", s)
		}
	})
	t.Run("flag overrides the config", func(t *testing.T) {
		t.Parallel() // an environment of its own
		e, g := hungEnv(t, 5, "1s")
		p := startHung(t, g, "run", "--config", e.cfgPath, "--admin", "", "--log-format", "json", "--shutdown-grace", "1m")
		p.signal(syscall.SIGTERM)
		p.waitLog("stopping: finishing the page in hand (up to 1m0s)")
		time.Sleep(1500 * time.Millisecond) // past the config's 1s
		if p.exited() {
			t.Fatalf("crmsync run exited before its --shutdown-grace 1m:\n%s", p.stderr.String())
		}
		p.signal(syscall.SIGINT)
		if code := p.wait(20 * time.Second); code != 130 {
			t.Errorf("exit status %d after SIGTERM then SIGINT, want 130\n%s", code, p.stderr.String())
		}
		if s := p.stderr.String(); !strings.Contains(s, "interrupted twice") {
			t.Errorf("stderr does not explain the second signal:\n%s", s)
		}
	})
}
