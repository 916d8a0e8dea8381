package engine_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
)

// checkNoDuplicates asserts that every TribeCRM record is linked to its own
// BlueRockTel record and that BlueRockTel holds exactly that many.
func (w *world) checkNoDuplicates(want int) {
	w.t.Helper()
	if n := w.srv.TribeCRM.Len(); n != want {
		w.t.Fatalf("TribeCRM holds %d records, want %d", n, want)
	}
	if n := w.brtTotal(); n != want {
		w.t.Errorf("BlueRockTel holds %d records for %d TribeCRM records: created twice", n, want)
	}
	seen := map[string]string{}
	for _, r := range w.tribeAll() {
		k := w.linkedBRT(r.ID)
		if k == "" {
			w.t.Errorf("TribeCRM %s is not linked", r.ID)
			continue
		}
		if other, dup := seen[k]; dup {
			w.t.Errorf("BlueRockTel %s is linked to TribeCRM %s and %s", k, other, r.ID)
		}
		seen[k] = r.ID
	}
	if ins, _ := w.st.Intents("bluerocktel"); len(ins) != 0 {
		w.t.Errorf("%d create intents left", len(ins))
	}
}

func lossy(l *lossyCreates) map[string]func(connectors.Connector) connectors.Connector {
	return map[string]func(connectors.Connector) connectors.Connector{"bluerocktel": func(c connectors.Connector) connectors.Connector {
		l.wrapped = wrapped{c}
		return l
	}}
}

func TestCreateWithLostAnswerIsLinkedNotCreatedAgain(t *testing.T) {
	t.Parallel()
	l := &lossyCreates{}
	w := newWorld(t, worldOpts{tribe: 12, pageSize: 5, flows: oneWay, wrap: lossy(l)})
	l.arm(3, nil)
	res := w.run("t2b")
	// The 3 lost answers are looked up at the end of the same run: found,
	// so linked, not created again.
	if c := counts(res, "bluerocktel"); c.Created != 9 || c.Failed != 3 || c.Linked != 3 {
		t.Fatalf("first run: %+v; want 9 created, 3 with an unknown outcome, then those 3 found and linked", c)
	}
	if ins, _ := w.st.Intents("bluerocktel"); len(ins) != 0 {
		t.Fatalf("%d create intents kept, want 0 (resolved by the end-of-run lookup)", len(ins))
	}
	if len(res.Undelivered) != 0 {
		t.Fatalf("writes left owed after the lost answers were resolved: %+v", res.Undelivered)
	}
	res = w.run("t2b")
	if c := counts(res, "bluerocktel"); c.Linked != 0 || c.Created != 0 {
		t.Fatalf("next run: %+v; want nothing left to resolve", c)
	}
	w.checkNoDuplicates(12)
	if n := writes(w.run("t2b")); n != 0 {
		t.Errorf("a third run made %d writes", n)
	}
}

func TestCreateNeverSentIsCreatedOnTheNextRun(t *testing.T) {
	t.Parallel()
	l := &notSent{}
	w := newWorld(t, worldOpts{tribe: 6, flows: oneWay, wrap: map[string]func(connectors.Connector) connectors.Connector{
		"bluerocktel": func(c connectors.Connector) connectors.Connector { l.wrapped = wrapped{c}; return l }}})
	l.arm(2)
	res := w.run("t2b")
	// The end-of-run lookup finds the 2 lost creates absent and sends them.
	if c := counts(res, "bluerocktel"); c.Created != 6 || c.Linked != 0 {
		t.Fatalf("first run: %+v; want 4 created, then the 2 lost ones looked up, found absent and created", c)
	}
	w.checkNoDuplicates(6)
	res = w.run("t2b")
	if c := counts(res, "bluerocktel"); c.Created != 0 || c.Linked != 0 || len(res.Undelivered) != 0 {
		t.Fatalf("next run: %+v, owed %v; want nothing left", c, res.Undelivered)
	}
}

func TestCreateThenCancelledRunCreatesNothingTwice(t *testing.T) {
	t.Parallel()
	l := &lossyCreates{}
	w := newWorld(t, worldOpts{tribe: 12, pageSize: 5, flows: oneWay, wrap: lossy(l)})
	ctx, cancel := context.WithCancel(w.ctx)
	l.arm(1, cancel) // the 1st create happens, then the process is told to stop at once
	if _, err := w.eng.Run(ctx, w.flow("t2b"), engine.RunOptions{}); err == nil {
		t.Log("the cancelled run ended without an error")
	}
	w.run("t2b")
	w.checkNoDuplicates(12)
}

// dying makes the process "die" right after its n-th create reached
// BlueRockTel: the state file is copied as it is at that instant (the
// create intents are committed, the page is not), and every later call
// fails, so nothing more happens in this run.
type dying struct {
	wrapped
	mu       sync.Mutex
	n        int
	dead     bool
	snapshot func()
}

func errDead() error {
	return &connectors.Error{System: "bluerocktel", Op: "any", Kind: connectors.Retryable, Message: "the process is dead (test)"}
}

func (d *dying) isDead() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dead
}

func (d *dying) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	if d.isDead() {
		return connectors.Record{}, errDead()
	}
	got, err := d.Connector.Create(ctx, rec)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n--
	if d.n == 0 {
		d.snapshot()
		d.dead = true
		return connectors.Record{}, errDead()
	}
	return got, err
}

func (d *dying) Pull(ctx context.Context, cur connectors.Cursor, o connectors.PullOptions) (connectors.Page, error) {
	if d.isDead() {
		return connectors.Page{}, errDead()
	}
	return d.Connector.Pull(ctx, cur, o)
}

func (d *dying) Find(ctx context.Context, entity string, m []connectors.Match) ([]connectors.Record, error) {
	if d.isDead() {
		return nil, errDead()
	}
	return d.Connector.Find(ctx, entity, m)
}

func (d *dying) Update(ctx context.Context, entity, id string, f map[string]any) (connectors.Record, error) {
	if d.isDead() {
		return connectors.Record{}, errDead()
	}
	return d.Connector.Update(ctx, entity, id, f)
}

func TestProcessDeathBetweenCreateAndCommit(t *testing.T) {
	t.Parallel()
	// One write at a time, so "dies after create n" is an exact point.
	for _, n := range []int{3, 14} { // on the first page (first sync, bulk) and on a later one
		t.Run("dies after create "+strconv.Itoa(n), func(t *testing.T) {
			t.Parallel() // a world of its own
			d := &dying{n: n}
			w := newWorld(t, worldOpts{tribe: 30, pageSize: 10, concurrency: 1, flows: oneWay, wrap: map[string]func(connectors.Connector) connectors.Connector{
				"bluerocktel": func(c connectors.Connector) connectors.Connector { d.wrapped = wrapped{c}; return d }}})
			var snap []byte
			d.snapshot = func() {
				var err error
				if snap, err = os.ReadFile(w.statePath); err != nil {
					t.Error(err)
				}
			}
			if _, err := w.eng.Run(w.ctx, w.flow("t2b"), engine.RunOptions{}); err == nil {
				t.Fatal("the run went on after the process died")
			}
			created := w.brtTotal()
			if created != n {
				t.Fatalf("BlueRockTel holds %d records when the process died, want %d", created, n)
			}
			// Restart: the state file as the dead process left it.
			if err := w.st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(w.statePath, snap, 0o600); err != nil {
				t.Fatal(err)
			}
			w.open()
			d.mu.Lock()
			d.dead = false
			d.mu.Unlock()
			if ins, _ := w.st.Intents("bluerocktel"); len(ins) == 0 {
				t.Fatal("no create intent in the state the process left")
			}
			res := w.run("t2b")
			c := counts(res, "bluerocktel")
			t.Logf("after the restart: %+v", c)
			if c.Linked < 1 {
				t.Errorf("the create made before the death was not linked: %+v", c)
			}
			w.checkNoDuplicates(30)
		})
	}
}

// notSent loses creates before they reach the server (connection reset
// while sending): outcome unknown, but nothing was created.
type notSent struct {
	wrapped
	mu    sync.Mutex
	armed int
}

func (c *notSent) arm(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = n
}

func (c *notSent) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	c.mu.Lock()
	lose := c.armed > 0
	if lose {
		c.armed--
	}
	c.mu.Unlock()
	if lose {
		return connectors.Record{}, &connectors.Error{System: c.System(), Op: "create", Kind: connectors.OutcomeUnknown, Message: "connection reset while sending (test)"}
	}
	return c.Connector.Create(ctx, rec)
}
