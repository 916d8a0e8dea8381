package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/crmsync/cluster"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/state/pgstate/pgtest"
)

// pg is the e2e binary's PostgreSQL, started by the first test that needs
// it and stopped by runMain.
var pg pgtest.Lazy

var clusterLong = flag.Bool("cluster.long", false, "run the long replica failover tests (5,000 records, several kills)")

// clusterTTL is the lease TTL of the short replica tests; the long ones
// (-cluster.long) run with the default, cluster.DefaultTTL.
const clusterTTL = 3 * time.Second

// counter counts the writes (every request but GET) a replica sends, and
// slows each a little so that a first sync lasts long enough to be cut.
type counter struct{ n atomic.Int64 }

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			c.n.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
		h.ServeHTTP(w, r)
	})
}

// clusterEnv is one set of emulators with its state in PostgreSQL, shared
// by replicas that each reach the emulators through fronts of their own.
type clusterEnv struct {
	*testEnv
	dsn string
	ttl time.Duration
	// edit, when set, changes a replica's config text (by replica name).
	edit func(name, text string) string
}

func newClusterEnv(t *testing.T, seed int) *clusterEnv {
	t.Helper()
	srv := pg.Get(t)
	dsn, err := pgtest.URL(srv.Schema(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{Seed: seed, ExampleConcurrency: true, Edit: unlimited})
	ttl := clusterTTL
	if *clusterLong {
		ttl = cluster.DefaultTTL
	}
	return &clusterEnv{testEnv: e, dsn: dsn, ttl: ttl}
}

// replica starts `crmsync run` with a config of its own whose systems are
// reached through counting fronts; it returns the process, its admin base
// URL and its write counter.
func (c *clusterEnv) replica(t *testing.T, name string) (*proc, string, *counter) {
	t.Helper()
	cnt := &counter{}
	urls := map[string]string{}
	for sys, u := range c.urls {
		urls[sys] = u
	}
	for sys, h := range map[string]http.Handler{"overplane": c.srv.Overplane, bluerocktel.System: c.srv.BlueRockTel} {
		hs := newServer(t, cnt.wrap(h))
		urls[sys] = hs
	}
	text := exampleConfig(t, urls, c.token, c.dsn)
	text = unlimited(text)
	text = replaceOnce(t, text, `schedule: "*/5 * * * *"`, `schedule: "@every 2s"`)
	text += fmt.Sprintf("\ncluster:\n  lease_ttl: %s\n  replica: %s\n", c.ttl, name)
	if c.edit != nil {
		text = c.edit(name, text)
	}
	path := filepath.Join(c.dir, "config-"+name+".yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "run", "--config", path, "--admin", "127.0.0.1:0", "--log-format", "json")
	return p, "http://" + p.adminAddr(), cnt
}

// held is the flows a replica's /readyz says it holds (nil when it does
// not answer).
func held(base string) []string {
	code, body := get(base + "/readyz")
	if code == 0 {
		return nil
	}
	var r struct {
		Held []string `json:"held_flows"`
	}
	_ = json.Unmarshal([]byte(body), &r)
	return r.Held
}

func holderOf(bases []string, flow string) int {
	for i, b := range bases {
		if slices.Contains(held(b), flow) {
			return i
		}
	}
	return -1
}

// reference syncs the same seed once with one process on bbolt: what the
// targets must hold in the end.
func reference(t *testing.T, seed int) *testEnv {
	t.Helper()
	clean := newEnv(t, envOptions{Seed: seed, ExampleConcurrency: true, Edit: unlimited})
	if r := clean.cli("sync", flowName, "--json", "--log-level", "warn"); r.Code != 0 {
		t.Fatalf("reference sync: %s", r)
	}
	return clean
}

// converged waits until both targets hold what the reference holds.
func converged(t *testing.T, c *clusterEnv, clean *testEnv, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		diffs := ""
		for _, sys := range []string{"bluerocktel", "overplane"} {
			if d := contentDiff(clean.contents(sys), c.contents(sys)); d != "" {
				diffs += fmt.Sprintf("%s (- lost, + extra or twice):\n%s\n", sys, d)
			}
		}
		if diffs == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets did not converge on the reference within %s:\n%s", within, tail(diffs, 40))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Three replicas share the state; the one running the flow is killed with
// SIGKILL in the middle of a first sync. Another takes the flow over within
// 30 s and continues from the last committed page; in the end the targets
// hold exactly what one uninterrupted sync writes (nothing lost, nothing
// twice).
func TestReplicaKilledMidRunFailsOver(t *testing.T) {
	t.Parallel() // own emulators, own schema; mostly waiting on leases
	seed, kills := 400, 1
	if *clusterLong {
		seed, kills = 5000, 4
	}
	c := newClusterEnv(t, seed)
	clean := reference(t, seed)
	names := []string{"r0", "r1", "r2"}
	procs := make([]*proc, 3)
	bases := make([]string, 3)
	for i, n := range names {
		procs[i], bases[i], _ = c.replica(t, n)
	}
	var took []string
	// Every replica is healthy, holding the flow or not; one holds it.
	waitFor(t, 30*time.Second, "a replica to hold the flow", func() bool { return holderOf(bases, flowName) >= 0 })
	for i, b := range bases {
		if code, _ := get(b + "/healthz"); code != http.StatusOK {
			t.Errorf("replica %s /healthz = %d, want 200 whether it holds a lease or not", names[i], code)
		}
	}
	for k := 0; k < kills; k++ {
		var h int
		waitFor(t, 30*time.Second, "a replica to hold the flow", func() bool { h = holderOf(bases, flowName); return h >= 0 })
		start := len(c.srv.BlueRockTel.Writes())
		target := start + seed/(2*kills+2)
		waitFor(t, 60*time.Second, "the holder to be mid-run", func() bool { return len(c.srv.BlueRockTel.Writes()) >= target })
		if err := procs[h].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		<-procs[h].done
		dead := bases[h]
		bases[h] = "http://127.0.0.1:1" // answers nothing
		var next int
		waitFor(t, 30*time.Second, "another replica to take the flow over", func() bool {
			next = holderOf(bases, flowName)
			return next >= 0
		})
		after := len(c.srv.BlueRockTel.Writes())
		waitFor(t, 30*time.Second, "the new holder to write", func() bool { return len(c.srv.BlueRockTel.Writes()) > after })
		took = append(took, time.Since(killed).Round(100*time.Millisecond).String())
		t.Logf("kill %d: %s (%s) killed after %d writes; %s took over; writing again %s after the kill", k+1, names[h], dead, target, names[next], took[k])
		// Restart the killed replica so the next round has three again.
		procs[h], bases[h], _ = c.replica(t, names[h]+fmt.Sprintf("-%d", k+1))
	}
	converged(t, c, clean, 3*time.Minute)
	for i, p := range procs {
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("replica %d exited %d:\n%s", i, code, tail(p.stderr.String(), 10))
		}
	}
	t.Logf("%d records, %d kills, failover (kill to the next write) %s", seed, kills, strings.Join(took, ", "))
}

// A replica frozen with SIGSTOP past its lease, then resumed, sends no
// write at all (each replica reaches the targets through a counting front
// of its own), and its commits are refused: the other replica's work
// stands, nothing is duplicated.
func TestFrozenReplicaWritesNothingAfterResume(t *testing.T) {
	t.Parallel() // own emulators, own schema; mostly waiting on leases
	seed := 400
	if *clusterLong {
		seed = 3000
	}
	c := newClusterEnv(t, seed)
	clean := reference(t, seed)
	a, baseA, cntA := c.replica(t, "a")
	waitFor(t, 30*time.Second, "replica a to hold the flow", func() bool { return slices.Contains(held(baseA), flowName) })
	b, baseB, cntB := c.replica(t, "b")
	waitFor(t, 60*time.Second, "a to be mid-run", func() bool { return cntA.n.Load() >= int64(seed/3) })
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	time.Sleep(200 * time.Millisecond) // requests a sent before the stop arrive
	sentA := cntA.n.Load()
	waitFor(t, 30*time.Second, "b to take the flow over", func() bool { return slices.Contains(held(baseB), flowName) })
	converged(t, c, clean, 3*time.Minute)
	if time.Since(frozen) < 2*c.ttl {
		time.Sleep(2*c.ttl - time.Since(frozen))
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * c.ttl) // a resumes its run, ticks, and its schedule fires
	if got := cntA.n.Load(); got != sentA {
		t.Errorf("the resumed replica sent %d writes after its lease ran out", got-sentA)
	}
	converged(t, c, clean, 30*time.Second)
	if slices.Contains(held(baseA), flowName) && slices.Contains(held(baseB), flowName) {
		t.Errorf("both replicas say they hold %s", flowName)
	}
	for _, p := range []*proc{a, b} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("exit %d:\n%s", code, tail(p.stderr.String(), 10))
		}
	}
	t.Logf("%d records; a sent %d writes before the freeze and none after; b sent %d", seed, sentA, cntB.n.Load())
	if !strings.Contains(a.stderr.String(), "lease") {
		t.Errorf("the resumed replica's log says nothing of its lease:\n%s", tail(a.stderr.String(), 15))
	}
}

// newServer serves h on a loopback port until t ends and returns its URL.
func newServer(t *testing.T, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

// The one-off commands work on a PostgreSQL state as on a file (sync,
// status, plan, deadletters), never show the password, and a sync beside a
// running replica that holds the flow refuses, naming the holder.
func TestCommandsOnPostgresState(t *testing.T) {
	t.Parallel() // own emulators, own schema; mostly waiting on leases
	c := newClusterEnv(t, 60)
	// A password in the URL (the server ignores it on its socket) must
	// never be printed.
	dsn := strings.Replace(c.dsn, "postgres://crmsync@", "postgres://crmsync:s3cretpw@", 1)
	if dsn == c.dsn {
		t.Fatalf("test DSN %s has no user to add a password to", c.dsn)
	}
	c.dsn = dsn
	c.writeConfig(unlimited(exampleConfig(t, c.urls, c.token, dsn)))
	res := c.sync()
	if got := counts(t, res, bluerocktel.System).Created; got != 60 {
		t.Fatalf("sync on PostgreSQL created %d in BlueRockTel, want 60", got)
	}
	st := c.status()
	if len(st.Flows) == 0 || st.Flows[0].LastRun == nil || strings.Contains(st.State, "s3cretpw") || !strings.Contains(st.State, "xxxxx") {
		t.Fatalf("status on PostgreSQL: %+v", st)
	}
	for _, args := range [][]string{{"plan"}, {"deadletters", "list"}, {"status"}} {
		r := c.cli(append(args, "--log-level", "warn")...)
		if r.Code != 0 {
			t.Fatalf("%v on PostgreSQL: %s", args, r)
		}
		if strings.Contains(r.Stdout+r.Stderr, "s3cretpw") {
			t.Fatalf("%v printed the database password:\n%s", args, r)
		}
	}
	if r := c.cli("plan", "--json", "--log-level", "warn"); strings.Contains(r.Stdout, `"op"`) {
		t.Fatalf("plan after a sync plans changes: %s", r.Stdout)
	}
	p, base, _ := c.replica(t, "holder-1")
	waitFor(t, 30*time.Second, "the replica to hold the flow", func() bool { return slices.Contains(held(base), flowName) })
	if code, page := get(base + "/"); code != http.StatusOK || !strings.Contains(page, "held by this replica") || !strings.Contains(page, "replica holder-1, one of 1") {
		t.Errorf("console on PostgreSQL: %d\n%s", code, tail(page, 30))
	}
	r := c.cli("sync", "--log-level", "warn")
	if r.Code == 0 || !strings.Contains(r.Stderr, "held by replica holder-1") {
		t.Fatalf("sync beside the holder: %s; want a refusal naming holder-1", r)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("replica exit %d:\n%s", code, tail(p.stderr.String(), 10))
	}
	if strings.Contains(p.stderr.String(), "s3cretpw") {
		t.Fatal("the replica logged the database password")
	}
	// The replica released its lease when it stopped: a sync runs at once.
	if r := c.cli("sync", "--log-level", "warn"); r.Code != 0 {
		t.Fatalf("sync after the replica stopped: %s", r)
	}
}

// A TribeCRM webhook delivered to a replica that does not hold the flow is
// passed to the one that does (LISTEN/NOTIFY on the state database), which
// runs the flow at once: the edit arrives without waiting for the
// (hourly) schedule.
func TestWebhookOnAnotherReplicaRunsOnTheHolder(t *testing.T) {
	t.Parallel() // own emulators, own schema; mostly waiting on leases
	c := newClusterEnv(t, 30)
	hooks := map[string]string{"a": freeAddr(t), "b": freeAddr(t)}
	c.edit = func(name, s string) string {
		for _, r := range [][2]string{
			{"${CRMSYNC_WEBHOOKS_LISTEN:-}", hooks[name]},
			{"${CRMSYNC_PUBLIC_URL:-}", "http://" + hooks["b"]}, // the vendor delivers to b
			{"${TRIBECRM_WEBHOOK_SECRET:-}", tribeHookSecret},
			{`schedule: "@every 2s"`, `schedule: "@hourly"`},
		} {
			s = replaceOnce(t, s, r[0], r[1])
		}
		return s
	}
	a, baseA, _ := c.replica(t, "a")
	waitFor(t, 30*time.Second, "a to hold the flow and finish its first run", func() bool {
		return slices.Contains(held(baseA), flowName) && len(c.blueRecords()) == 30
	})
	b, baseB, _ := c.replica(t, "b")
	waitFor(t, 30*time.Second, "b to be up", func() bool { return held(baseB) != nil })
	if slices.Contains(held(baseB), flowName) {
		t.Fatal("b holds the flow; the test needs a to")
	}
	if r := runCLI(context.Background(), "webhooks", "register", "--config", filepath.Join(c.dir, "config-b.yaml")); r.Code != 0 {
		t.Fatalf("webhooks register: %s", r)
	}
	h := &hookEnv{testEnv: c.testEnv}
	h.rename(t, 3, "Renamed Through B")
	waitFor(t, 30*time.Second, "the rename to reach BlueRockTel through a's run", func() bool { return h.arrived("Renamed Through B") })
	for _, p := range []*proc{a, b} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(30 * time.Second); code != 0 {
			t.Errorf("exit %d:\n%s", code, tail(p.stderr.String(), 10))
		}
	}
}

// A state file moved to PostgreSQL with `state migrate` carries on: the
// next sync on PostgreSQL writes nothing (links, fingerprints and cursors
// came along), and moving it back gives a file that syncs the same way.
func TestMigrateFileToPostgresAndBack(t *testing.T) {
	t.Parallel() // own emulators, own schema; mostly waiting on leases
	c := newClusterEnv(t, 40)
	if got := counts(t, c.sync(), bluerocktel.System).Created; got != 40 {
		t.Fatalf("first sync on the file created %d, want 40", got)
	}
	if r := runCLI(context.Background(), "state", "migrate", "--from", c.state, "--to", c.dsn); r.Code != 0 {
		t.Fatalf("state migrate to PostgreSQL: %s", r)
	}
	c.writeConfig(unlimited(exampleConfig(t, c.urls, c.token, c.dsn)))
	res := c.sync()
	for _, sys := range []string{bluerocktel.System, "overplane"} {
		if cn := counts(t, res, sys); cn.Writes()+cn.Linked != 0 {
			t.Errorf("sync on the migrated PostgreSQL state wrote or linked %d in %s, want 0 (the links came along)", cn.Writes()+cn.Linked, sys)
		}
	}
	back := filepath.Join(c.dir, "back.db")
	if r := runCLI(context.Background(), "state", "migrate", "--from", c.dsn, "--to", back); r.Code != 0 {
		t.Fatalf("state migrate back to a file: %s", r)
	}
	c.writeConfig(unlimited(exampleConfig(t, c.urls, c.token, back)))
	res = c.sync()
	for _, sys := range []string{bluerocktel.System, "overplane"} {
		if cn := counts(t, res, sys); cn.Writes()+cn.Linked != 0 {
			t.Errorf("sync on the file migrated back wrote or linked %d in %s, want 0", cn.Writes()+cn.Linked, sys)
		}
	}
}
