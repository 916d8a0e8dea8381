package bluerocktel

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const adminEmail = "admin@bluerocktel.example"

const secretPassword = "s3cret-Pa55word"

func secretUsers() []brtemu.User {
	return []brtemu.User{{ID: 1, Name: "API Admin", Email: adminEmail, Password: secretPassword, Role: 1}}
}

func TestLoginLazyCachedAndRenewedOn401(t *testing.T) {
	t.Parallel()
	logs := &syncBuf{}
	e := newEnv(t, brtemu.Options{Records: 20, Users: secretUsers()}, func(o *Options) {
		o.Token, o.Email, o.Password = "", adminEmail, secretPassword
		o.Logger = zerolog.New(logs).Level(zerolog.TraceLevel)
		o.HTTP = newHTTP()
	})
	if e.emu.Logins() != 0 {
		t.Fatal("New logged in")
	}
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := e.cli.Get(ctx, EntityProspects, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if e.emu.Logins() != 1 {
		t.Fatalf("logins = %d, want 1 (token cached)", e.emu.Logins())
	}
	e.emu.RevokeTokens()
	if _, err := e.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: map[string]any{"name": "After Revoke SAS"}}); err != nil {
		t.Fatalf("create after revoke: %v", err)
	}
	if e.emu.Logins() != 2 {
		t.Fatalf("logins = %d, want 2 (one new login after the 401)", e.emu.Logins())
	}
	if e.emu.Len() != 21 {
		t.Errorf("create after re-login stored %d records", e.emu.Len())
	}
	out := logs.String()
	if strings.Contains(out, secretPassword) || regexp.MustCompile(`[0-9a-f]{64}`).MatchString(out) {
		t.Errorf("a secret reached the log:\n%s", out)
	}
	if !strings.Contains(out, "logged in") {
		t.Errorf("login not logged:\n%s", out)
	}
}

func TestConcurrentCallsLogInOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 20, Users: secretUsers()}, func(o *Options) {
		o.Token, o.Email, o.Password = "", adminEmail, secretPassword
	})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := e.cli.Get(context.Background(), EntityProspects, fmt.Sprint(i%20+1))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if e.emu.Logins() != 1 {
		t.Errorf("logins = %d, want 1", e.emu.Logins())
	}
}

func TestLoginBadCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 1}, nil)
	c := e.newClient(t, func(o *Options) { o.Token, o.Email, o.Password = "", adminEmail, "hunter2-wrong" })
	_, err := c.Get(context.Background(), EntityProspects, "1")
	if !connectors.IsAuth(err) {
		t.Fatalf("want Auth, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2-wrong") || !strings.Contains(err.Error(), "These credentials do not match our records.") {
		t.Errorf("error text: %v", err)
	}
}

func TestCustomersBothNamings(t *testing.T) {
	t.Parallel()
	for _, n := range bothNamings {
		t.Run(string(n), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, brtemu.Options{Records: 5, Customers: 12, Naming: emuNaming(n)}, func(o *Options) { o.Naming = n })
			ctx := context.Background()
			rec, err := e.cli.Create(ctx, connectors.Record{Entity: EntityCustomers, Fields: map[string]any{
				"name": "Harbor Freight NV", "email_address": "ap@harbor.example", "vip": true, "is_reseller": true,
			}})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Entity != EntityCustomers || rec.ID != "13" || rec.Fields["customer_account"] != "CL000013" || rec.Fields["vip"] != true || rec.Fields["is_reseller"] != true {
				t.Errorf("customer: %+v", rec)
			}
			upd, err := e.cli.Update(ctx, EntityCustomers, rec.ID, map[string]any{"phone": "+32 3 000"})
			if err != nil || upd.Fields["phone"] != "+32 3 000" || upd.Fields["name"] != "Harbor Freight NV" {
				t.Fatalf("update: %v %v", upd.Fields, err)
			}
			found, err := e.cli.Find(ctx, EntityCustomers, []connectors.Match{{Field: "customer_account", Value: "cl000013"}})
			if err != nil || len(found) != 1 || found[0].ID != rec.ID {
				t.Errorf("find customer: %v %v", found, err)
			}
			if err := e.cli.Delete(ctx, EntityCustomers, rec.ID); err != nil {
				t.Fatal(err)
			}
			_, err = e.cli.Get(ctx, EntityCustomers, rec.ID)
			if !connectors.IsNotFound(err) || !strings.Contains(err.Error(), `[App\Customer] 13`) {
				t.Errorf("deleted customer: %v", err)
			}
		})
	}
}

func TestConvertStageBothNamings(t *testing.T) {
	t.Parallel()
	for _, n := range bothNamings {
		t.Run(string(n), func(t *testing.T) {
			t.Parallel()
			const path = "/api/v1/prospects/{id}/transform"
			e := newEnv(t, brtemu.Options{Records: 10, Customers: 3, Naming: emuNaming(n), ConvertPath: path}, func(o *Options) { o.ConvertPath = path })
			ctx := context.Background()
			before, _ := e.emu.Record(EntityProspects, 4)
			cust, err := e.cli.ConvertStage(ctx, EntityProspects, "4", EntityCustomers)
			if err != nil {
				t.Fatal(err)
			}
			if cust.Entity != EntityCustomers || cust.ID != "4" || cust.Fields["customer_account"] != "CL000004" ||
				cust.Fields["name"] != before["name"] || cust.Fields["email_address"] != before["email_address"] {
				t.Errorf("converted: %+v", cust)
			}
			if _, err := e.cli.Get(ctx, EntityProspects, "4"); !connectors.IsNotFound(err) {
				t.Errorf("prospect still there: %v", err)
			}
			got, err := e.cli.Get(ctx, EntityCustomers, cust.ID)
			if err != nil || !got.UpdatedAt.Equal(cust.UpdatedAt) {
				t.Errorf("customer get: %v", err)
			}
			if _, err := e.cli.ConvertStage(ctx, EntityProspects, "4", EntityCustomers); !connectors.IsNotFound(err) {
				t.Errorf("second conversion: %v", err)
			}
			if _, err := e.cli.ConvertStage(ctx, EntityCustomers, "1", EntityProspects); !connectors.IsRejected(err) {
				t.Errorf("backwards conversion: %v", err)
			}
			// A client whose path differs from the server's: with conversion
			// on it gets the route's 404; by default (auto) the missing route
			// is a capability the server lacks (issue 9 item 10).
			other := e.newClient(t, func(o *Options) { o.Conversion = ConversionOn })
			if _, err := other.ConvertStage(ctx, EntityProspects, "5", EntityCustomers); !connectors.IsNotFound(err) ||
				!strings.Contains(err.Error(), "could not be found") {
				t.Errorf("wrong path, conversion on: %v", err)
			}
			auto := e.newClient(t, nil)
			if _, err := auto.ConvertStage(ctx, EntityProspects, "5", EntityCustomers); !connectors.IsUnsupported(err) {
				t.Errorf("wrong path, conversion auto: %v", err)
			}
		})
	}
}

func TestRoleFiveRepresentative(t *testing.T) {
	t.Parallel()
	sales := brtemu.User{ID: 9, Name: "Sales Rep", Email: "rep@bluerocktel.example", Password: "pw-rep", Role: 5, Token: "sales-token"}
	e := newEnv(t, brtemu.Options{Records: 3, Users: []brtemu.User{sales}}, func(o *Options) { o.Token = "sales-token" })
	ctx := context.Background()
	rec, err := e.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: map[string]any{"name": "Rep Owned", "representative_id": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fields["representative_id"] != float64(9) {
		t.Errorf("role-5 create: representative_id %v, want 9", rec.Fields["representative_id"])
	}
	if _, err := e.cli.Update(ctx, EntityProspects, rec.ID, map[string]any{"representative_id": 9, "comment": "same rep"}); err != nil {
		t.Errorf("keeping the representative: %v", err)
	}
	_, err = e.cli.Update(ctx, EntityProspects, rec.ID, map[string]any{"representative_id": 2})
	var ce *connectors.Error
	if !asErr(err, &ce) || ce.Status != 403 || ce.Kind != connectors.Rejected || ce.Message != "This action is unauthorized." {
		t.Errorf("role-5 rep change: %v", err)
	}
	// The admin token may change it.
	admin := e.newClient(t, nil)
	if _, err := admin.Update(ctx, EntityProspects, rec.ID, map[string]any{"representative_id": 2}); err != nil {
		t.Errorf("admin rep change: %v", err)
	}
}

// Conversions while a pull pages (the prospect disappears, a customer
// appears) lose neither side across this pull and the next.
func TestPullConversionsDuringPaging(t *testing.T) {
	t.Parallel()
	for _, n := range bothNamings {
		t.Run(string(n), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, brtemu.Options{Records: 400, Customers: 60, Naming: emuNaming(n)}, nil)
			var mu sync.Mutex
			nextConv := int64(400)
			converted := map[int64]int64{}
			e.emu.OnList(func(entity string) {
				mu.Lock()
				defer mu.Unlock()
				for k := 0; k < 2 && nextConv > 0; nextConv -= 7 {
					if cid, ok := e.emu.Convert(nextConv); ok {
						converted[nextConv] = cid
						k++
					}
				}
			})
			first, cur, _ := pullAll(t, e.cli, nil, 30)
			e.emu.OnList(nil)
			second, _, _ := pullAll(t, e.cli, cur, 30)
			all := append(first, second...)
			pros, custs := idSet(all, EntityProspects), idSet(all, EntityCustomers)
			for _, id := range e.emu.IDs(EntityProspects) {
				if pros[itoa64(id)] == 0 {
					t.Errorf("prospect %d lost", id)
				}
			}
			for _, id := range e.emu.IDs(EntityCustomers) {
				if custs[itoa64(id)] == 0 {
					t.Errorf("customer %d lost", id)
				}
			}
			if len(converted) == 0 || e.emu.Count(EntityCustomers) != 60+len(converted) {
				t.Fatalf("conversions: %d", len(converted))
			}
		})
	}
}
