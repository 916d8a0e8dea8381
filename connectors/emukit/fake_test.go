package emukit

import "testing"

func TestFakeCompaniesUniqueAndStable(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for i := 0; i < 30000; i++ {
		p := Fake(i)
		if j, ok := seen[p.Company]; ok {
			t.Fatalf("Fake(%d) and Fake(%d) share company %q", i, j, p.Company)
		}
		seen[p.Company] = i
		if p.Email == "" || p.LastName == "" || p.City == "" {
			t.Fatalf("Fake(%d) incomplete: %+v", i, p)
		}
	}
	if Fake(42) != Fake(42) {
		t.Fatal("Fake is not deterministic")
	}
}
