package statetest

import (
	"reflect"
	"testing"

	"github.com/crmsync/crmsync/state"
)

func lookup(t *testing.T, s Store, system, key, value string) []state.IndexEntry {
	t.Helper()
	// Asked together with a value no record holds, and twice: each answer
	// is the one of its own value.
	q := []state.IndexValue{{Key: "email", Value: "nobody@nowhere.example"}, {Key: key, Value: value}, {Key: key, Value: value}}
	got, err := s.IndexLookup(system, q)
	if err != nil {
		t.Fatalf("IndexLookup(%s, %s, %q): %v", system, key, value, err)
	}
	if len(got) != 3 || len(got[0]) != 0 || !reflect.DeepEqual(got[1], got[2]) {
		t.Fatalf("IndexLookup(%s, %v) = %v; want 3 answers, the first empty, the others equal", system, q, got)
	}
	return got[1]
}

func indexEmpty(t *testing.T, s Store, system string, want bool) {
	t.Helper()
	if got, err := s.IndexEmpty(system); err != nil || got != want {
		t.Fatalf("IndexEmpty(%s) = %v, %v; want %v", system, got, err, want)
	}
}

// testMatchIndex: rows of several records per value, a record indexed
// again loses its old values, an unindexed record is found no more, the
// meta entry and the rows survive a restart, a reset drops them, and
// another system's index is apart.
func testMatchIndex(t *testing.T, e *env) {
	if m, err := e.s.IndexMeta("bluerocktel"); err != nil || m != nil {
		t.Fatalf("empty store: IndexMeta = %+v, %v; want nil", m, err)
	}
	if got := lookup(t, e.s, "bluerocktel", "email", "a@x.example"); len(got) != 0 {
		t.Fatalf("empty store: lookup = %v", got)
	}
	indexEmpty(t, e.s, "bluerocktel", true)
	e.commit(func(b *state.Batch) {
		b.SetIndexMeta("bluerocktel", state.IndexMeta{Keys: []string{"email"}, At: t0})
	})
	indexEmpty(t, e.s, "bluerocktel", true) // a meta entry alone: a target read in full that held nothing
	p7 := state.IndexEntry{Entity: "prospects", ID: "7"}
	p8 := state.IndexEntry{Entity: "prospects", ID: "8"}
	e.commit(func(b *state.Batch) {
		b.IndexRecord("bluerocktel", "prospects:7", p7, []state.IndexValue{{Key: "email", Value: "a@x.example"}, {Key: "name", Value: "ACME BV"}})
		b.IndexRecord("bluerocktel", "prospects:8", p8, []state.IndexValue{{Key: "email", Value: "a@x.example"}, {Key: "name", Value: ""}})
		b.IndexRecord("tribecrm", "t-1", state.IndexEntry{Entity: "lead", ID: "t-1"}, []state.IndexValue{{Key: "email", Value: "a@x.example"}})
		b.SetIndexMeta("bluerocktel", state.IndexMeta{Keys: []string{"email", "name"}, Cursor: []byte("c1"), At: t0})
	})
	indexEmpty(t, e.s, "bluerocktel", false)
	indexEmpty(t, e.s, "overplane", true)
	if got := lookup(t, e.s, "bluerocktel", "email", "a@x.example"); !reflect.DeepEqual(got, []state.IndexEntry{p7, p8}) {
		t.Fatalf("two records under one e-mail: %v", got)
	}
	if got := lookup(t, e.s, "bluerocktel", "name", "ACME BV"); !reflect.DeepEqual(got, []state.IndexEntry{p7}) {
		t.Fatalf("name: %v", got)
	}
	if got := lookup(t, e.s, "bluerocktel", "name", ""); len(got) != 0 {
		t.Fatalf("an empty value was indexed: %v", got)
	}
	// 7's e-mail changed in the target; 8 was deleted there.
	e.commit(func(b *state.Batch) {
		b.IndexRecord("bluerocktel", "prospects:7", p7, []state.IndexValue{{Key: "email", Value: "b@x.example"}})
		b.UnindexRecord("bluerocktel", "prospects:8")
		b.SetIndexMeta("bluerocktel", state.IndexMeta{Keys: []string{"email", "name"}, Complete: true, Cursor: []byte("c2"), At: t0})
	})
	e.s = e.reopen()
	for _, c := range []struct {
		key, val string
		want     []state.IndexEntry
	}{
		{"email", "a@x.example", nil},
		{"email", "b@x.example", []state.IndexEntry{p7}},
		{"name", "ACME BV", nil},
	} {
		if got := lookup(t, e.s, "bluerocktel", c.key, c.val); (len(got) != 0 || len(c.want) != 0) && !reflect.DeepEqual(got, c.want) {
			t.Errorf("after re-index and reopen: %s=%q gives %v, want %v", c.key, c.val, got, c.want)
		}
	}
	m, err := e.s.IndexMeta("bluerocktel")
	want := &state.IndexMeta{Keys: []string{"email", "name"}, Complete: true, Cursor: []byte("c2"), At: t0.Truncate(e.res)}
	if err != nil || m == nil || !reflect.DeepEqual(m.Keys, want.Keys) || m.Complete != want.Complete ||
		string(m.Cursor) != string(want.Cursor) || !m.At.Equal(want.At) {
		t.Fatalf("IndexMeta = %+v, %v; want %+v", m, err, want)
	}
	e.commit(func(b *state.Batch) { b.ResetIndex("bluerocktel") })
	if m, err := e.s.IndexMeta("bluerocktel"); err != nil || m != nil {
		t.Fatalf("after reset: IndexMeta = %+v, %v; want nil", m, err)
	}
	if got := lookup(t, e.s, "bluerocktel", "email", "b@x.example"); len(got) != 0 {
		t.Fatalf("after reset: %v", got)
	}
	indexEmpty(t, e.s, "bluerocktel", true)
	indexEmpty(t, e.s, "tribecrm", false)
	if got := lookup(t, e.s, "tribecrm", "email", "a@x.example"); len(got) != 1 {
		t.Fatalf("another system's index changed with bluerocktel's: %v", got)
	}
	// The same record twice in one batch: the last one wins.
	e.commit(func(b *state.Batch) {
		b.IndexRecord("bluerocktel", "prospects:7", p7, []state.IndexValue{{Key: "email", Value: "c@x.example"}})
		b.IndexRecord("bluerocktel", "prospects:7", p7, []state.IndexValue{{Key: "email", Value: "d@x.example"}})
	})
	if got := lookup(t, e.s, "bluerocktel", "email", "c@x.example"); len(got) != 0 {
		t.Fatalf("a record indexed twice in one batch keeps its first value: %v", got)
	}
	if got := lookup(t, e.s, "bluerocktel", "email", "d@x.example"); len(got) != 1 {
		t.Fatalf("a record indexed twice in one batch lost its last value: %v", got)
	}
}
