package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/cluster"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
	"github.com/crmsync/crmsync/state/pgstate/pgtest"
)

var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func openStore(t *testing.T) *pgstate.Store {
	t.Helper()
	dsn := pg.Get(t).Schema(t)
	s, err := pgstate.Open(context.Background(), dsn, pgstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestGroupsJoinFlowsThatShareASystem(t *testing.T) {
	got := cluster.Groups(map[string][]string{
		"a": {"tribe", "brt"}, "b": {"brt", "over"}, "c": {"x", "y"}, "d": {"over"}, "e": {"z"},
	})
	want := [][]string{{"a", "b", "d"}, {"c"}, {"e"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Groups = %v, want %v", got, want)
	}
}

func newCoord(t *testing.T, s *pgstate.Store, id string, groups [][]string, ttl time.Duration) *cluster.Coordinator {
	t.Helper()
	c, err := cluster.New(cluster.Options{Leaser: s, Replica: id, Groups: groups, TTL: ttl, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func held(cs ...*cluster.Coordinator) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = len(c.Status().Held)
	}
	return out
}

// Three replicas share six flows two each; when one stops beating, its
// flows go to the other two (three each) once its leases ran out, and no
// flow is ever held by two.
func TestFlowsSpreadAndFailOver(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	var groups [][]string
	for i := 0; i < 6; i++ {
		groups = append(groups, []string{fmt.Sprintf("flow%d", i)})
	}
	const ttl = 600 * time.Millisecond
	a, b, c := newCoord(t, s, "a", groups, ttl), newCoord(t, s, "b", groups, ttl), newCoord(t, s, "c", groups, ttl)
	all := []*cluster.Coordinator{a, b, c}
	for round := 0; round < 2; round++ {
		for _, x := range all {
			x.Tick(ctx)
		}
	}
	if got := held(a, b, c); !reflect.DeepEqual(got, []int{2, 2, 2}) {
		t.Fatalf("held after two rounds = %v, want 2 each", got)
	}
	checkExclusive(t, s, 6)
	// c dies: it no longer ticks. Within the TTL nobody takes its flows.
	for _, x := range []*cluster.Coordinator{a, b} {
		x.Tick(ctx)
	}
	checkExclusive(t, s, 6)
	deadline := time.Now().Add(10 * ttl)
	for time.Now().Before(deadline) {
		time.Sleep(ttl / 3)
		a.Tick(ctx)
		b.Tick(ctx)
		if got := held(a, b); reflect.DeepEqual(got, []int{3, 3}) {
			break
		}
	}
	if got := held(a, b); !reflect.DeepEqual(got, []int{3, 3}) {
		t.Fatalf("after c died: held = %v, want 3 each", got)
	}
	checkExclusive(t, s, 6)
}

// checkExclusive: every flow has exactly one live holder.
func checkExclusive(t *testing.T, s *pgstate.Store, n int) {
	t.Helper()
	hs, err := s.Holders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, h := range hs {
		if seen[h.Flow] {
			t.Fatalf("flow %s held twice: %+v", h.Flow, hs)
		}
		seen[h.Flow] = true
	}
	if len(seen) > n {
		t.Fatalf("holders %+v", hs)
	}
}

// A replica paused past its lease (it stopped ticking) finds its run's
// Guard failing and its fenced commit refused once another took over.
func TestPausedReplicaWritesNothing(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	groups := [][]string{{"f"}}
	const ttl = 500 * time.Millisecond
	a := newCoord(t, s, "a", groups, ttl)
	a.Tick(ctx)
	u, err := a.Begin("f")
	if err != nil {
		t.Fatalf("Begin on the holder: %v", err)
	}
	defer u.End()
	if err := u.Guard(); err != nil {
		t.Fatalf("Guard while held: %v", err)
	}
	b := newCoord(t, s, "b", groups, ttl)
	if _, err := b.Begin("f"); !errors.Is(err, cluster.ErrNotHeld) {
		t.Fatalf("Begin on a replica without the lease = %v, want ErrNotHeld", err)
	}
	time.Sleep(ttl + 100*time.Millisecond) // a is "paused": no tick
	for i := 0; i < 3 && !b.Holds("f"); i++ {
		b.Tick(ctx)
	}
	if !b.Holds("f") {
		t.Fatal("b did not take over the lease a let run out")
	}
	if err := u.Guard(); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("paused holder's Guard = %v, want ErrFenced", err)
	}
	bt := &state.Batch{}
	bt.SetCursor("flow/f/x", []byte("stale"))
	if err := u.Store.Commit(bt); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("paused holder's commit = %v, want ErrFenced", err)
	}
	// a resumes: its tick finds the lease gone and tells the run.
	a.Tick(ctx)
	select {
	case <-u.Lost:
	default:
		t.Fatal("the paused holder's run was not told its lease was lost")
	}
	if a.Holds("f") {
		t.Fatal("a took the lease back from b")
	}
}

// A replica that joins gets its share: the others hand flows over once
// their runs ended.
func TestJoiningReplicaGetsItsShare(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	groups := [][]string{{"f1"}, {"f2"}, {"f3"}, {"f4"}}
	const ttl = 3 * time.Second
	a := newCoord(t, s, "a", groups, ttl)
	a.Tick(ctx)
	if got := held(a); got[0] != 4 {
		t.Fatalf("a alone holds %v, want 4", got)
	}
	u, err := a.Begin("f2") // a run in progress on a flow that moves
	if err != nil {
		t.Fatal(err)
	}
	b := newCoord(t, s, "b", groups, ttl)
	b.Tick(ctx) // b beats; a still holds everything
	a.Tick(ctx) // a hands over f4 (not busy) and keeps f2 while its run lasts
	b.Tick(ctx)
	if got := held(a, b); !reflect.DeepEqual(got, []int{3, 1}) {
		t.Fatalf("while a runs f2: held = %v, want [3 1]", got)
	}
	u.End()
	a.Tick(ctx)
	b.Tick(ctx)
	if got := held(a, b); !reflect.DeepEqual(got, []int{2, 2}) {
		t.Fatalf("after the run: held = %v, want [2 2]", got)
	}
	checkExclusive(t, s, 4)
}
