package state

import "testing"

func TestLinksListsOneSystemOnly(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	b := &Batch{}
	b.Link("tribecrm", "t1", "c1")
	b.Link("tribecrm", "t2", "c2")
	b.Link("tribecrmx", "t3", "c3") // a system whose name extends another's must not leak in
	b.Link("overplane", "o1", "c1")
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Links("tribecrm")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["t1"] != "c1" || got["t2"] != "c2" {
		t.Fatalf("Links(tribecrm) = %v", got)
	}
}
