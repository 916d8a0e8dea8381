package conntest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
)

// resume: stop after page 2, a new client (a restarted process) continues
// from the stored cursor bytes; together they return every record.
func (s *suite) resume(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 300})
	want := e.emu.Keys()
	first := pullUntilDone(t, e.client(t, ClientConfig{}), nil, connectors.PullOptions{PageSize: 20}, 2)
	if first.last.Done {
		t.Fatalf("the pull ended after %d pages: nothing to resume", first.pages)
	}
	var v struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(first.next, &v); err != nil || v.V == nil {
		t.Errorf("cursor is not versioned JSON ({\"v\":...}): %s", first.next)
	}
	saved := append([]byte(nil), first.next...)
	rest := pullUntilDone(t, e.client(t, ClientConfig{}), saved, connectors.PullOptions{PageSize: 20}, 0)
	union := map[string]int{}
	for k, n := range first.seen {
		union[k] += n
	}
	for k, n := range rest.seen {
		union[k] += n
	}
	if m := missing(want, union); len(m) > 0 {
		t.Fatalf("after resuming, %d of %d records never pulled: %s", len(m), len(want), firstN(m, 5))
	}
	t.Logf("resume: %d records before the stop, %d after, %d held", len(first.seen), len(rest.seen), len(want))
}

// incremental: after a full pull, records edited through the API come back
// in the next pull from the saved cursor, with the edit.
func (s *suite) incremental(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 200})
	c := e.client(t, ClientConfig{})
	full := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: 50}, 0)
	quiet := pullUntilDone(t, c, full.next, connectors.PullOptions{PageSize: 50}, 0)
	t.Logf("incremental: a pull with nothing changed returned %d of %d records (FullScan=%v)", len(quiet.seen), len(full.seen), quiet.last.FullScan)
	recs := make([]connectors.Record, 0, len(full.latest))
	for _, k := range sortedKeys(full.latest) {
		recs = append(recs, full.latest[k])
	}
	type edited struct {
		key, field string
		want       any
	}
	var edits []edited
	for _, ed := range s.h.Edits {
		k, f, w := ed(t, e.api, recs)
		edits = append(edits, edited{k, f, w})
	}
	next := pullUntilDone(t, c, quiet.next, connectors.PullOptions{PageSize: 50}, 0)
	for _, ed := range edits {
		r, ok := next.latest[ed.key]
		if !ok {
			t.Errorf("%s was edited (%s) but the next pull did not return it", ed.key, ed.field)
			continue
		}
		if got, _ := Lookup(r.Fields, ed.field); !same(got, ed.want) {
			t.Errorf("%s: next pull shows %s = %v, want %v", ed.key, ed.field, got, ed.want)
		}
	}
	t.Logf("incremental: %d edits, next pull returned %d records", len(edits), len(next.seen))
}

// createGetFind: Create returns the record as Get and Pull return it, and
// Find locates it by its match fields, case-insensitively and trimmed.
func (s *suite) createGetFind(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 40})
	c := e.client(t, ClientConfig{})
	ctx := context.Background()
	in := s.h.NewRecord(s.next())
	rec, err := c.Create(ctx, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	checkRecord(t, rec)
	if rec.Entity != in.Entity {
		t.Errorf("created record has Entity %q, want %q", rec.Entity, in.Entity)
	}
	got, err := c.Get(ctx, rec.Entity, rec.ID)
	if err != nil {
		t.Fatalf("get after create: %v", err)
	}
	if a, b := fieldsJSON(t, rec), fieldsJSON(t, got); a != b {
		t.Errorf("Get differs from what Create returned:\ncreate %s\nget    %s", a, b)
	}
	if !got.UpdatedAt.Equal(rec.UpdatedAt) || !got.CreatedAt.Equal(rec.CreatedAt) {
		t.Errorf("timestamps: create %v/%v, get %v/%v", rec.CreatedAt, rec.UpdatedAt, got.CreatedAt, got.UpdatedAt)
	}
	// Create returns the record as Pull will return it.
	all := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: 100}, 0)
	pulled, ok := all.latest[Key(rec.Entity, rec.ID)]
	if !ok {
		t.Fatal("created record not returned by a full pull")
	}
	if a, b := fieldsJSON(t, rec), fieldsJSON(t, pulled); a != b {
		t.Errorf("Pull differs from what Create returned:\ncreate %s\npull   %s", a, b)
	}
	ms := s.h.Match(rec)
	found, err := c.Find(ctx, s.h.Entity, mangle(ms))
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if len(found) != 1 || !contains(found, rec.Entity, rec.ID) {
		t.Fatalf("Find(%v) returned %d records, want exactly the created one", mangle(ms), len(found))
	}
	none := slices.Clone(ms)
	none[0].Value = "no-such-value-" + fmt.Sprint(s.next())
	found, err = c.Find(ctx, s.h.Entity, none)
	if err != nil || len(found) != 0 {
		t.Fatalf("Find of nothing: %d records, err %v", len(found), err)
	}
	if _, err := c.Get(ctx, rec.Entity, rec.ID+"0"); !connectors.IsNotFound(err) {
		t.Errorf("Get of a missing id: want NotFound, got %v", err)
	}
}

// updateOnlyChanged: Update sends only the changed field, and every other
// field keeps its value (read through the API, not the client).
func (s *suite) updateOnlyChanged(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 20})
	c := e.client(t, ClientConfig{})
	ctx := context.Background()
	for _, ch := range s.h.Updates {
		t.Run(ch.Field, func(t *testing.T) {
			rec, err := c.Create(ctx, s.h.NewRecord(s.next()))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			before := Flatten(s.h.RawGet(t, e.api, rec.Entity, rec.ID))
			if old, ok := before[ch.Field]; ok && same(old, ch.Value) {
				t.Fatalf("harness: %s already is %v", ch.Field, ch.Value)
			}
			time.Sleep(2 * time.Millisecond) // let a millisecond clock move
			mark := e.rec.mark()
			upd, err := c.Update(ctx, rec.Entity, rec.ID, Nest(ch.Field, ch.Value))
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if got, _ := Lookup(upd.Fields, ch.Field); !same(got, ch.Value) {
				t.Errorf("Update returned %s = %v, want %v", ch.Field, got, ch.Value)
			}
			xs, _ := e.rec.since(mark)
			writes := 0
			for _, x := range xs {
				if x.Method == http.MethodGet || x.Method == http.MethodHead || x.Path == s.h.AuthPath {
					continue
				}
				writes++
				var body map[string]any
				if err := json.Unmarshal(x.Body, &body); err != nil {
					t.Errorf("%s %s: body is not a JSON object: %s", x.Method, x.Path, snippet(x.Body))
					continue
				}
				if k := s.h.UpdateIdentity; k != "" {
					if id, has := body[k]; has {
						if !namesRecord(before, rec.ID, k, id) {
							t.Errorf("%s %s names %v in %s, which is neither the record's id %s nor one of its entities' (%s)", x.Method, x.Path, id, k, rec.ID, k)
						}
						delete(body, k)
					}
				}
				leaves := Flatten(body)
				if len(leaves) != 1 {
					t.Errorf("%s %s sent %d fields (%s), want only the changed one", x.Method, x.Path, len(leaves), snippet(x.Body))
				}
				for _, v := range leaves {
					if !same(v, ch.Value) {
						t.Errorf("%s %s sent %s, not the new value", x.Method, x.Path, snippet(x.Body))
					}
				}
			}
			if writes == 0 {
				t.Error("Update sent no write request")
			}
			after := Flatten(s.h.RawGet(t, e.api, rec.Entity, rec.ID))
			if got := after[ch.Field]; !same(got, ch.Value) {
				t.Errorf("API shows %s = %v after the update, want %v", ch.Field, got, ch.Value)
			}
			kept := 0
			for path, old := range before {
				if path == ch.Field || s.volatile(path) {
					continue
				}
				if now, ok := after[path]; !ok || !same(now, old) {
					t.Errorf("%s changed from %v to %v though only %s was updated", path, old, now, ch.Field)
				} else {
					kept++
				}
			}
			t.Logf("update %s: %d write request(s), %d other fields kept", ch.Field, writes, kept)
		})
	}
}

func (s *suite) volatile(path string) bool {
	for _, v := range s.h.Volatile {
		if path == v || strings.HasPrefix(path, v+".") {
			return true
		}
	}
	return false
}

// convertStage: a supported conversion moves the record (Get in the old
// entity is NotFound, Get and Find in the new one work, a full pull returns
// it under the new entity); an unsupported one is Rejected and changes
// nothing.
func (s *suite) convertStage(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 20})
	c := e.client(t, ClientConfig{})
	ctx := context.Background()
	in := s.h.NewRecord(s.next())
	if s.h.Convert != nil {
		in.Entity = s.h.Convert.From
	}
	rec, err := c.Create(ctx, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if s.h.Convert == nil {
		_, err := c.ConvertStage(ctx, rec.Entity, rec.ID, rec.Entity+"-next")
		expectKind(t, "ConvertStage on a connector without conversion", err, connectors.Rejected)
		got, err := c.Get(ctx, rec.Entity, rec.ID)
		if err != nil || fieldsJSON(t, got) != fieldsJSON(t, rec) {
			t.Fatalf("a refused conversion changed the record: %v", err)
		}
		t.Skip("unsupported: ConvertStage is refused (Rejected) and the record is unchanged")
	}
	to := s.h.Convert.To
	conv, err := c.ConvertStage(ctx, rec.Entity, rec.ID, to)
	if err != nil {
		t.Fatalf("convert %s -> %s: %v", rec.Entity, to, err)
	}
	checkRecord(t, conv)
	if conv.Entity != to {
		t.Fatalf("converted record has Entity %q, want %q", conv.Entity, to)
	}
	if _, err := c.Get(ctx, rec.Entity, rec.ID); !connectors.IsNotFound(err) {
		t.Errorf("after conversion, Get in %s: want NotFound, got %v", rec.Entity, err)
	}
	got, err := c.Get(ctx, to, conv.ID)
	if err != nil {
		t.Fatalf("after conversion, Get in %s: %v", to, err)
	}
	if fieldsJSON(t, got) != fieldsJSON(t, conv) {
		t.Errorf("Get differs from what ConvertStage returned:\nconvert %s\nget     %s", fieldsJSON(t, conv), fieldsJSON(t, got))
	}
	found, err := c.Find(ctx, to, s.h.Match(rec))
	if err != nil || !contains(found, to, conv.ID) {
		t.Errorf("Find in %s by the original match fields: %d records, err %v", to, len(found), err)
	}
	all := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: 100}, 0)
	if all.seen[Key(to, conv.ID)] == 0 {
		t.Error("a full pull does not return the converted record under its new entity")
	}
	if all.seen[Key(rec.Entity, rec.ID)] != 0 {
		t.Error("a full pull still returns the record under its old entity")
	}
	t.Logf("convert: %s/%s -> %s/%s", rec.Entity, rec.ID, conv.Entity, conv.ID)
}

// delete: the record is gone afterwards (Get is NotFound, a full pull does
// not return it); the harness checks what must survive.
func (s *suite) delete(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 20})
	c := e.client(t, ClientConfig{})
	ctx := context.Background()
	rec, err := c.Create(ctx, s.h.NewRecord(s.next()))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.Delete(ctx, rec.Entity, rec.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(ctx, rec.Entity, rec.ID); !connectors.IsNotFound(err) {
		t.Fatalf("Get after delete: want NotFound, got %v", err)
	}
	if err := c.Delete(ctx, rec.Entity, rec.ID); err != nil && !connectors.IsNotFound(err) {
		t.Errorf("second delete: want nil or NotFound, got %v", err)
	}
	all := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: 100}, 0)
	if all.seen[Key(rec.Entity, rec.ID)] != 0 {
		t.Error("a full pull still returns the deleted record")
	}
	if s.h.AfterDelete != nil {
		s.h.AfterDelete(t, e.api, rec)
	}
}

// authRefresh: with refreshable credentials, a token the server no longer
// accepts costs one 401 and one new token, and the call succeeds.
func (s *suite) authRefresh(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 20})
	if e.emu.ExpireAuth == nil || s.h.AuthPath == "" {
		t.Skip("unsupported: the API's credentials are static keys with no expiry or refresh flow")
	}
	c := e.client(t, ClientConfig{Auth: true})
	ctx := context.Background()
	keys := e.emu.Keys()
	entity, id := splitKey(keys[0])
	mark := e.rec.mark()
	if _, err := c.Get(ctx, entity, id); err != nil {
		t.Fatalf("first call: %v", err)
	}
	entity2, id2 := splitKey(keys[1])
	if _, err := c.Get(ctx, entity2, id2); err != nil {
		t.Fatalf("second call: %v", err)
	}
	e.emu.ExpireAuth()
	if _, err := c.Get(ctx, entity, id); err != nil {
		t.Fatalf("call after the token expired: %v", err)
	}
	p, err := c.Pull(ctx, nil, connectors.PullOptions{PageSize: 10})
	if err != nil || len(p.Records) == 0 && p.Done {
		t.Fatalf("pull after the refresh: %v", err)
	}
	xs, _ := e.rec.since(mark)
	auths, unauthorized := 0, 0
	for _, x := range xs {
		if x.Path == s.h.AuthPath {
			auths++
		}
		if x.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	if auths != 2 {
		t.Errorf("%d token requests, want 2 (one at first use, one after the expiry)", auths)
	}
	if unauthorized != 1 {
		t.Errorf("%d answers were 401, want exactly 1 (the expired token, once)", unauthorized)
	}
	t.Logf("auth: %d token requests, %d 401 answers", auths, unauthorized)
}

// rateLimitHonoured: after a 429 the client waits the Retry-After before it
// asks again, and the call succeeds. At one request per second the second
// Get is answered 429 with Retry-After: 1, the shortest wait the header can
// say, so the case costs one second; the client's cap (RetryAfterMax, 2s)
// is above it, so the full advertised wait is what it must honour.
func (s *suite) rateLimitHonoured(t *testing.T) {
	e := s.start(t, EmuOptions{Records: 10, Faults: emukit.Faults{RateLimit: 1, RetryAfter: time.Second}})
	c := e.client(t, ClientConfig{Light: true})
	ctx := context.Background()
	keys := e.emu.Keys()
	for i := 0; i < 2; i++ {
		entity, id := splitKey(keys[i])
		if _, err := c.Get(ctx, entity, id); err != nil {
			t.Fatalf("get %d under a rate limit: %v", i, err)
		}
	}
	if e.emu.Injected()["429"] == 0 {
		t.Fatal("no 429 was injected")
	}
	xs, _ := e.rec.since(0)
	checked := 0
	for i, x := range xs {
		if x.Status != http.StatusTooManyRequests {
			continue
		}
		for _, y := range xs[i+1:] {
			if y.Method == x.Method && y.url() == x.url() {
				if gap := y.At.Sub(x.Done); gap < 900*time.Millisecond {
					t.Errorf("%s %s asked again %v after a 429 with Retry-After: 1", x.Method, x.Path, gap.Round(time.Millisecond))
				}
				checked++
				break
			}
		}
	}
	if checked == 0 {
		t.Fatal("no request was retried after its 429")
	}
	t.Logf("429: %d retried after Retry-After", checked)
}

// ties5000: 5,000 records on one timestamp, pulled in pages of 100, lose
// nothing; a write landing on the same timestamp after the pull is caught
// by the next one.
func (s *suite) ties5000(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if s.h.SameReadsAs != "" {
		t.Skipf("this profile pulls as %s does, which runs this case", s.h.SameReadsAs)
	}
	const n = 5000
	e := s.start(t, EmuOptions{Records: n, Ties: true})
	c := e.client(t, ClientConfig{Light: true})
	want := e.emu.Keys()
	res := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: 100}, 0)
	if m := missing(want, res.seen); len(m) > 0 {
		t.Fatalf("%d of %d records on one timestamp never pulled: %s", len(m), len(want), firstN(m, 5))
	}
	dups := 0
	for _, k := range want {
		dups += res.seen[k] - 1
	}
	if !s.h.Overlap && dups > 0 {
		t.Errorf("%d repeats in a quiet pull of tied records", dups)
	}
	recs := make([]connectors.Record, 0, len(res.latest))
	for _, k := range sortedKeys(res.latest) {
		recs = append(recs, res.latest[k])
	}
	key, field, val := s.h.Edits[0](t, e.api, recs)
	next := pullUntilDone(t, c, res.next, connectors.PullOptions{PageSize: 100}, 0)
	r, ok := next.latest[key]
	if got, _ := Lookup(r.Fields, field); !ok || !same(got, val) {
		t.Errorf("an edit on the tied timestamp after the pull was not returned by the next pull (%s %s)", key, field)
	}
	t.Logf("ties: %d held, %d distinct pulled in %d pages, %d repeats; next pull %d records", len(want), len(res.seen), res.pages, dups, len(next.seen))
}

// namesRecord reports whether id, sent in an update body under key k, is
// the record's own id or the id of one of its nested entities (TribeCRM
// updates an organisation through Relation_Organization with the
// organisation's ID).
func namesRecord(before map[string]any, recID, k string, id any) bool {
	if fmt.Sprint(id) == recID {
		return true
	}
	for path, v := range before {
		if (path == k || strings.HasSuffix(path, "."+k)) && same(v, id) {
			return true
		}
	}
	return false
}
