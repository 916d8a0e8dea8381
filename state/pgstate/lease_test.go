package pgstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

func cursorBatch(key, v string) *state.Batch {
	b := &state.Batch{}
	b.SetCursor(key, []byte(v))
	return b
}

// A lease passes to another replica only once it ran out or was released,
// with a greater token; the old holder's fenced writes then fail with
// ErrFenced and leave nothing behind, and it cannot renew.
func TestLeaseFencesTheOldHolder(t *testing.T) {
	s := openT(t, pg.Get(t).Schema(t), pgstate.Options{})
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	a, ok, err := s.Acquire(ctx, "replica-a", []string{"f1", "f2"}, ttl)
	if err != nil || !ok || len(a) != 2 {
		t.Fatalf("first Acquire = %v %v %v", a, ok, err)
	}
	if _, ok, err := s.Acquire(ctx, "replica-b", []string{"f2", "f3"}, ttl); err != nil || ok {
		t.Fatalf("Acquire of a held lease = ok %v, %v; want refused", ok, err)
	}
	// All or none: f3 was not taken by b's refused attempt.
	if hs, _ := s.Holders(ctx); len(hs) != 2 {
		t.Fatalf("holders after a refused acquire = %+v, want f1 and f2 only", hs)
	}
	fa := s.Fenced(a[0])
	if err := fa.Commit(cursorBatch("k", "a1")); err != nil {
		t.Fatalf("holder's fenced commit: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	b, ok, err := s.Acquire(ctx, "replica-b", []string{"f1"}, time.Minute)
	if err != nil || !ok || b[0].Token <= a[0].Token {
		t.Fatalf("Acquire after expiry = %v %v %v; want a greater token than %d", b, ok, err, a[0].Token)
	}
	if err := fa.Commit(cursorBatch("k", "a2")); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("old holder's commit = %v, want ErrFenced", err)
	}
	if err := fa.PutIntents([]state.Intent{{ID: "c1", System: "t", Entity: "e"}}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("old holder's PutIntents = %v, want ErrFenced", err)
	}
	if v, _ := s.Cursor("k"); string(v) != "a1" {
		t.Fatalf("cursor after the fenced commit = %q, want a1 (nothing written)", v)
	}
	if in, _ := s.Intents("t"); len(in) != 0 {
		t.Fatalf("intents after the fenced PutIntents = %v, want none", in)
	}
	if ok, err := s.Renew(ctx, "replica-a", a, ttl); err != nil || ok {
		t.Fatalf("old holder's Renew = %v %v, want refused", ok, err)
	}
	if err := s.Fenced(b[0]).Commit(cursorBatch("k", "b1")); err != nil {
		t.Fatalf("new holder's commit: %v", err)
	}
	// Release hands it over at once.
	if err := s.Release(ctx, "replica-b", b); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.Acquire(ctx, "replica-c", []string{"f1"}, time.Minute)
	if err != nil || !ok || c[0].Token <= b[0].Token {
		t.Fatalf("Acquire after Release = %v %v %v", c, ok, err)
	}
	if err := s.Fenced(b[0]).Commit(cursorBatch("k", "b2")); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("released holder's commit = %v, want ErrFenced", err)
	}
}

// A holder re-acquiring or renewing its own live lease keeps its token.
func TestLeaseRenewKeepsToken(t *testing.T) {
	s := openT(t, pg.Get(t).Schema(t), pgstate.Options{})
	ctx := context.Background()
	a, _, err := s.Acquire(ctx, "r", []string{"f"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Renew(ctx, "r", a, time.Minute); !ok || err != nil {
		t.Fatalf("Renew = %v %v", ok, err)
	}
	again, ok, err := s.Acquire(ctx, "r", []string{"f"}, time.Minute)
	if !ok || err != nil || again[0].Token != a[0].Token {
		t.Fatalf("re-Acquire = %v %v %v, want token %d", again, ok, err, a[0].Token)
	}
}

// Heartbeats list live replicas; Leave drops a replica and ends its leases.
func TestHeartbeatAndLeave(t *testing.T) {
	s := openT(t, pg.Get(t).Schema(t), pgstate.Options{})
	ctx := context.Background()
	for _, id := range []string{"b", "a"} {
		if _, err := s.Heartbeat(ctx, id, "host "+id, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Heartbeat(ctx, "c", "", time.Minute)
	if err != nil || len(rs) != 3 || rs[0].ID != "a" || rs[2].ID != "c" {
		t.Fatalf("Heartbeat = %+v %v, want a, b, c", rs, err)
	}
	if _, _, err := s.Acquire(ctx, "b", []string{"f"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Leave(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Heartbeat(ctx, "a", "", time.Minute); len(rs) != 2 {
		t.Fatalf("replicas after Leave = %+v", rs)
	}
	if _, ok, _ := s.Acquire(ctx, "a", []string{"f"}, time.Minute); !ok {
		t.Fatal("the leaving replica's lease was not freed")
	}
}

// A hint sent by one Store reaches every Store listening on the same
// database, and Listen ends with its context.
func TestNotifyReachesListeners(t *testing.T) {
	dsn := pg.Get(t).Schema(t)
	sender, listener := openT(t, dsn, pgstate.Options{}), openT(t, dsn, pgstate.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() { done <- listener.Listen(ctx, func(f string) { got <- f }) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := sender.Notify(context.Background(), "flow-a"); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-got:
			if f != "flow-a" {
				t.Fatalf("got hint %q, want flow-a", f)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Listen after cancel = %v", err)
			}
			return
		case <-time.After(200 * time.Millisecond): // the LISTEN may not be in place yet
		}
		if time.Now().After(deadline) {
			t.Fatal("no hint arrived")
		}
	}
}
