package bluerocktel

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// Issue 9 / research finding R16: the vendor's PHP SDK writes camelCase
// (bluerocktel/php-sdk src/Entities/Prospect.php,
// src/Endpoints/Prospects/CreateProspectRequest.php and
// UpdateProspectRequest.php send toArray() of the camelCase properties).
// A Laravel server whose rules know one spelling keeps only those keys
// ($request->validated()) and still answers 201, so a client writing the
// other spelling loses every multi-word field without an error. The
// emulator is strict in the same way; these tests write every column and
// read it back.

// writeValues returns a value for every writable column of cols (the
// emulator's schema), different for round 1 (create) and round 2 (update).
// Booleans are the opposite of the column default on create and the
// default on update, so a lost write shows either way.
func writeValues(cols []brtemu.Column, round int) map[string]any {
	out := map[string]any{}
	for i, col := range cols {
		switch col.Type {
		case "string":
			out[col.Name] = fmt.Sprintf("%s r%d", col.Name, round)
		case "email":
			out[col.Name] = fmt.Sprintf("%s.r%d@acme.example", strings.ReplaceAll(col.Name, "_", "-"), round)
		case "int":
			if col.Name == "prospection_code_id" {
				out[col.Name] = int64(2 + round) // 3, then 4: codes 1..5 exist
			} else {
				out[col.Name] = int64(100*round + i)
			}
		case "bool":
			def, _ := col.Default.(bool)
			out[col.Name] = def == (round == 2)
		}
	}
	return out
}

// sameJSON compares a decoded value with the value written (an int64
// written comes back as a float64).
func sameJSON(got, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}

// lost lists the fields of want that rec does not carry.
func lost(rec connectors.Record, want map[string]any) []string {
	var out []string
	for k, v := range want {
		if !sameJSON(rec.Fields[k], v) {
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, rec.Fields[k], v))
		}
	}
	sort.Strings(out)
	return out
}

// mappedFields are the native fields of the shipped mapping
// (examples/mappings/bluerocktel.yaml) that crmsync writes.
func mappedFields(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "examples", "mappings", "bluerocktel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^\s*-?\s*native:\s*"?([A-Za-z0-9_@.]+)"?`)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil || strings.HasPrefix(m[1], "@") || m[1] == "created_at" || m[1] == "updated_at" {
			continue
		}
		out = append(out, m[1])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %v in the example mapping", out)
	}
	return out
}

// TestWriteSpellingRoundTrip creates and then updates a record with every
// column (every field the example mapping writes among them) against a
// strict emulator, and reads every value back with Get. The "default"
// cases leave Options.Naming unset: the default must be the spelling of
// the emulator's default profile, the SDK's camelCase.
func TestWriteSpellingRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		server Naming // "" = the emulator's default profile
		client Naming // "" = the client's default
		read   bool   // read once before writing (NamingAuto learns the spelling)
	}{
		{"camel/default", "", "", false},
		{"camel/camel", NamingCamel, NamingCamel, false},
		{"camel/auto-before-any-answer", NamingCamel, NamingAuto, false},
		{"camel/auto", NamingCamel, NamingAuto, true},
		{"snake/snake", NamingSnake, NamingSnake, false},
		{"snake/auto", NamingSnake, NamingAuto, true},
	}
	for _, tc := range cases {
		for _, entity := range []string{EntityProspects, EntityCustomers} {
			t.Run(tc.name+"/"+entity, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, brtemu.Options{Records: 3, Customers: 3, Naming: emuNaming(tc.server)}, func(o *Options) { o.Naming = tc.client })
				ctx := context.Background()
				if tc.read {
					if _, err := e.cli.Get(ctx, entity, "1"); err != nil {
						t.Fatal(err)
					}
				}
				col := e.emu.Columns(entity)
				for _, f := range mappedFields(t) {
					if !slices.ContainsFunc(col, func(c brtemu.Column) bool { return c.Name == f }) {
						t.Fatalf("the example mapping writes %q, which the emulator's %s do not have", f, entity)
					}
				}

				create := writeValues(col, 1)
				rec, err := e.cli.Create(ctx, connectors.Record{Entity: entity, Fields: create})
				if err != nil {
					t.Fatal(err)
				}
				if l := lost(rec, create); len(l) > 0 {
					t.Errorf("create answer lost %d of %d fields:\n  %s", len(l), len(create), strings.Join(l, "\n  "))
				}
				got, err := e.cli.Get(ctx, entity, rec.ID)
				if err != nil {
					t.Fatal(err)
				}
				if l := lost(got, create); len(l) > 0 {
					t.Errorf("read after create lost %d of %d fields:\n  %s", len(l), len(create), strings.Join(l, "\n  "))
				}

				update := writeValues(col, 2)
				if _, err := e.cli.Update(ctx, entity, rec.ID, update); err != nil {
					t.Fatal(err)
				}
				got, err = e.cli.Get(ctx, entity, rec.ID)
				if err != nil {
					t.Fatal(err)
				}
				if l := lost(got, update); len(l) > 0 {
					t.Errorf("read after update lost %d of %d fields:\n  %s", len(l), len(update), strings.Join(l, "\n  "))
				}
			})
		}
	}
}

// TestWrongWriteSpellingIsDropped proves the emulator is strict: a client
// writing the other spelling gets 201 (and 201 on the update), and every
// column whose two spellings differ keeps its old value, as on a Laravel
// server validating one spelling. Columns spelt the same in both (name,
// phone, brand_id, ...) arrive. A lenient emulator accepts both.
func TestWrongWriteSpellingIsDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ server, client Naming }{
		{NamingCamel, NamingSnake},
		{NamingSnake, NamingCamel},
	} {
		t.Run(string(tc.server)+"-server/"+string(tc.client)+"-client", func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, brtemu.Options{Records: 2, Naming: emuNaming(tc.server)}, func(o *Options) { o.Naming = tc.client })
			ctx := context.Background()
			col := e.emu.Columns(EntityProspects)
			create := writeValues(col, 1)
			rec, err := e.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: create})
			if err != nil {
				t.Fatalf("create: %v (a strict server answers 201 and drops the keys)", err)
			}
			id := rec.ID
			update := writeValues(col, 2)
			if _, err := e.cli.Update(ctx, EntityProspects, id, update); err != nil {
				t.Fatalf("update: %v", err)
			}
			stored, ok := e.emu.Record(EntityProspects, mustInt(t, id))
			if !ok {
				t.Fatal("created record not stored")
			}
			var dropped, kept []string
			for _, c := range col {
				if ToCamel(c.Name) == c.Name {
					// One spelling: sent and stored.
					if !sameJSON(stored[c.Name], update[c.Name]) {
						t.Errorf("%s (same in both spellings) = %v, want %v", c.Name, stored[c.Name], update[c.Name])
					}
					kept = append(kept, c.Name)
					continue
				}
				want := c.Default // nil unless the column has a default
				if c.Name == "customer_account" {
					want = fmt.Sprintf("PR%06d", mustInt(t, id)) // filled in by the server (seed: "PR + zero-padded ID")
				}
				if !sameJSON(stored[c.Name], want) {
					t.Errorf("%s = %v, want it dropped (%v): the emulator accepted the %s spelling", c.Name, stored[c.Name], want, tc.client)
				}
				dropped = append(dropped, c.Name)
			}
			if len(dropped) < 15 || len(kept) < 5 {
				t.Errorf("dropped %d, kept %d columns: the test no longer covers both kinds", len(dropped), len(kept))
			}

			// The same writes reach a lenient emulator.
			le := newEnv(t, brtemu.Options{Records: 2, Naming: emuNaming(tc.server), LenientNaming: true}, func(o *Options) { o.Naming = tc.client })
			rec, err = le.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: create})
			if err != nil {
				t.Fatal(err)
			}
			if l := lost(rec, create); len(l) > 0 {
				t.Errorf("lenient emulator lost fields:\n  %s", strings.Join(l, "\n  "))
			}
		})
	}
}

func mustInt(t *testing.T, id string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(id, &n); err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return n
}
