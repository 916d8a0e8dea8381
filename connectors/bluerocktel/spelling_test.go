package bluerocktel

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
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

// writeValues returns a value for every writable column of c, different for
// round 1 (create) and round 2 (update). Booleans are the opposite of the
// column default on create and the default on update, so a lost write shows
// either way.
func writeValues(c *collection, round int) map[string]any {
	out := map[string]any{}
	for i, col := range c.Columns {
		switch col.Kind {
		case kString:
			out[col.Name] = fmt.Sprintf("%s r%d", col.Name, round)
		case kEmail:
			out[col.Name] = fmt.Sprintf("%s.r%d@acme.example", strings.ReplaceAll(col.Name, "_", "-"), round)
		case kInt:
			if col.Name == "prospection_code_id" {
				out[col.Name] = int64(2 + round) // 3, then 4: codes 1..5 exist
			} else {
				out[col.Name] = int64(100*round + i)
			}
		case kBool:
			def, _ := c.Defaults[col.Name].(bool)
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
				e := newEnv(t, EmulatorOptions{Records: 3, Customers: 3, Naming: tc.server}, func(o *Options) { o.Naming = tc.client })
				ctx := context.Background()
				if tc.read {
					if _, err := e.cli.Get(ctx, entity, "1"); err != nil {
						t.Fatal(err)
					}
				}
				col := e.emu.tables[entity].c
				for _, f := range mappedFields(t) {
					if _, ok := col.byName[f]; !ok {
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
	for _, tc := range []struct{ server, client Naming }{
		{NamingCamel, NamingSnake},
		{NamingSnake, NamingCamel},
	} {
		t.Run(string(tc.server)+"-server/"+string(tc.client)+"-client", func(t *testing.T) {
			e := newEnv(t, EmulatorOptions{Records: 2, Naming: tc.server}, func(o *Options) { o.Naming = tc.client })
			ctx := context.Background()
			col := e.emu.tables[EntityProspects].c
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
			defaults := col.Defaults
			var dropped, kept []string
			for _, c := range col.Columns {
				if ToCamel(c.Name) == c.Name {
					// One spelling: sent and stored.
					if !sameJSON(stored[c.Name], update[c.Name]) {
						t.Errorf("%s (same in both spellings) = %v, want %v", c.Name, stored[c.Name], update[c.Name])
					}
					kept = append(kept, c.Name)
					continue
				}
				want := defaults[c.Name] // nil unless the column has a default
				if c.Name == "customer_account" {
					want = col.account(mustInt(t, id)) // filled in by the server
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
			le := newEnv(t, EmulatorOptions{Records: 2, Naming: tc.server, LenientNaming: true}, func(o *Options) { o.Naming = tc.client })
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

// TestEmulatorDefaultProfileIsStrictCamel checks the emulator's default
// profile over plain HTTP: it answers camelCase and keeps only camelCase
// keys of a POST or PUT (keys spelt the same in both spellings too); the
// snake_case twins are dropped and the answer is still 201.
func TestEmulatorDefaultProfileIsStrictCamel(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1}, nil)
	status, _, m, body := e.raw(t, "POST", "/api/v1/prospects", jsonHdr(nil),
		`{"name":"Acme Corp","emailAddress":"a@acme.example","email_address":"b@acme.example","main_contact_first_name":"Ada","mainContactLastName":"Lovelace","charge_vat":false,"sector_id":4}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	if m["emailAddress"] != "a@acme.example" || m["mainContactFirstName"] != nil || m["mainContactLastName"] != "Lovelace" ||
		m["chargeVAT"] != true || m["sector_id"] != float64(4) || m["name"] != "Acme Corp" {
		t.Errorf("create kept the wrong keys: %s", body)
	}
	if _, snake := m["email_address"]; snake {
		t.Errorf("answer not in camelCase: %s", body)
	}
	before, _ := e.emu.Record(EntityProspects, 2)
	status, _, m, body = e.raw(t, "PUT", "/api/v1/prospects/2", jsonHdr(nil), `{"email_address":"c@acme.example","main_address_city":"Lyon"}`)
	if status != 201 || m["emailAddress"] != "a@acme.example" || m["mainAddressCity"] != nil {
		t.Errorf("PUT in snake_case changed the record: %d %s", status, body)
	}
	after, _ := e.emu.Record(EntityProspects, 2)
	if !sameJSON(after, before) {
		t.Errorf("PUT of dropped keys touched the record: %v -> %v", before, after)
	}

	// SetNaming switches the accepted spelling with the answers'.
	e.emu.SetNaming(NamingSnake)
	status, _, m, body = e.raw(t, "PUT", "/api/v1/prospects/2", jsonHdr(nil), `{"email_address":"c@acme.example","mainAddressCity":"Lyon"}`)
	if status != 201 || m["email_address"] != "c@acme.example" || m["main_address_city"] != nil {
		t.Errorf("after SetNaming(snake): %d %s", status, body)
	}
}
