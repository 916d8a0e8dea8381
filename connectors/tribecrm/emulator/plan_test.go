package emulator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	equivSeed = flag.Uint64("seed", 0, "replay one seed of TestIndexedListsAnswerAsTheScan (0: run many)")
	equivLong = flag.Bool("equiv.long", false, "run 2,000 seeds of TestIndexedListsAnswerAsTheScan instead of 60")
)

// TestIndexedListsAnswerAsTheScan runs random sets, edits and list queries
// and asks every query twice, answered by the indexes and by the full
// scan: the replies must be the same bytes (rows, order, @odata.count,
// @odata.nextLink, errors). After every edit the indexes must hold exactly
// the set's rows in order, under their current keys.
func TestIndexedListsAnswerAsTheScan(t *testing.T) {
	t.Parallel()
	seeds := []uint64{*equivSeed}
	if *equivSeed == 0 {
		n := 60
		if *equivLong {
			n = 2000
		}
		seeds = seeds[:0]
		for s := uint64(1); s <= uint64(n); s++ {
			seeds = append(seeds, s)
		}
	}
	for _, seed := range seeds {
		if msg := equivRun(seed); msg != "" {
			t.Fatalf("seed %d: %s\nreplay: go test ./connectors/tribecrm/emulator -run TestIndexedListsAnswerAsTheScan -seed=%d", seed, msg, seed)
		}
	}
}

// equiv is one random run: an emulator and the random source driving it.
type equiv struct {
	em *Emulator
	r  *rand.Rand
}

var equivStart = time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)

// equivRun returns "" or what differed.
func equivRun(seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0x5ca9))
	o := Options{Records: r.IntN(50), SeedOffset: int(seed % 7), Now: func() time.Time { return equivStart }}
	if r.IntN(3) == 0 {
		o.PageCap = 1 + r.IntN(6)
	}
	if r.IntN(4) == 0 {
		o.SeedSets = []string{funnelSet(flavourOrganization, "Lead"), funnelSet(flavourPerson, "Lead")}
	}
	q := &equiv{em: New(o), r: r}
	if r.IntN(3) == 0 {
		q.em.Freeze(equivStart) // everything seeded later ties
	}
	for step := 0; step < 120; step++ {
		if r.IntN(10) < 3 {
			what := q.edit()
			if msg := checkIndexes(q.em); msg != "" {
				return fmt.Sprintf("step %d, after %s: %s", step, what, msg)
			}
			continue
		}
		if msg := q.compare(q.randomQuery()); msg != "" {
			return fmt.Sprintf("step %d: %s", step, msg)
		}
	}
	return q.pageThrough()
}

// get serves one GET with the scan on or off.
func (q *equiv) get(path string, scan bool) []byte {
	q.em.mu.Lock()
	q.em.scan = scan
	q.em.mu.Unlock()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer dev-token")
	w := httptest.NewRecorder()
	q.em.ServeHTTP(w, req)
	return append([]byte(fmt.Sprintf("%d ", w.Code)), w.Body.Bytes()...)
}

func (q *equiv) compare(path string) string {
	a, b := q.get(path, false), q.get(path, true)
	if !bytes.Equal(a, b) {
		return fmt.Sprintf("GET %s\nindexed: %s\nscan:    %s", path, a, b)
	}
	return ""
}

// pageThrough reads every set with keyset pages, as the client does.
func (q *equiv) pageThrough() string {
	for _, set := range q.sets() {
		pos, size := "", 1+q.r.IntN(7)
		for page := 0; page < 200; page++ {
			p := "/v1/odata/" + set + "?$orderby=" + esc("LastMutationDate asc,ID asc") + "&$top=" + fmt.Sprint(size) + "&$count=true"
			if pos != "" {
				p += "&$filter=" + esc(pos)
			}
			if msg := q.compare(p); msg != "" {
				return "paging: " + msg
			}
			var body struct {
				Value []map[string]any `json:"value"`
			}
			_ = json.Unmarshal(bytes.TrimLeft(q.get(p, false), "0123456789 "), &body)
			if len(body.Value) == 0 {
				break
			}
			last := body.Value[len(body.Value)-1]
			pos = fmt.Sprintf("LastMutationDate gt %s or (LastMutationDate eq %s and ID gt %s)", last["LastMutationDate"], last["LastMutationDate"], last["ID"])
		}
	}
	return ""
}

func esc(s string) string { return escapeQueryValue(s) }

func (q *equiv) sets() []string {
	return append(funnelSets(), relationOrganization, relationPerson, organizationIdentity, "Datastore")
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// rows returns the ids, timestamps and links of a set's rows, in id order.
func (q *equiv) rows(set string) (ids, times, links []string) {
	q.em.mu.RLock()
	defer q.em.mu.RUnlock()
	for _, e := range q.em.st.rows[set] {
		ids = append(ids, e.id)
		if t, ok := e.props["LastMutationDate"].(time.Time); ok {
			times = append(times, formatTime(t))
		}
		for _, id := range e.nav {
			links = append(links, id)
		}
	}
	slices.Sort(ids)
	slices.Sort(times)
	slices.Sort(links)
	return ids, times, links
}

func (q *equiv) randomQuery() string {
	r := q.r
	set := pick(r, q.sets())
	var parts []string
	if r.IntN(5) != 0 {
		parts = append(parts, "$filter="+esc(q.randomFilter(set, 2)))
	}
	if r.IntN(4) != 0 {
		parts = append(parts, "$orderby="+esc(pick(r, []string{
			"LastMutationDate asc,ID asc", "LastMutationDate desc,ID desc", "LastMutationDate asc,ID asc,_Name desc",
			"LastMutationDate asc", "LastMutationDate desc,ID asc", "ID asc", "_Name desc", "SortIndex asc", "CreationDate desc,ID desc",
		})))
	}
	if r.IntN(3) != 0 {
		parts = append(parts, "$top="+fmt.Sprint(pick(r, []int{0, 1, 2, 3, 5, 10, 100})))
	}
	if r.IntN(4) == 0 {
		parts = append(parts, "$skip="+fmt.Sprint(pick(r, []int{0, 1, 2, 7})))
	}
	if r.IntN(2) == 0 {
		parts = append(parts, "$count=true")
	}
	if r.IntN(4) == 0 {
		parts = append(parts, "$select=ID,LastMutationDate")
	}
	r.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	return "/v1/odata/" + set + "?" + strings.Join(parts, "&")
}

func (q *equiv) randomFilter(set string, depth int) string {
	r := q.r
	if depth > 0 && r.IntN(3) == 0 {
		a, b := q.randomFilter(set, depth-1), q.randomFilter(set, depth-1)
		switch r.IntN(4) {
		case 0:
			return "(" + a + ") and (" + b + ")"
		case 1:
			return "not (" + a + ")"
		}
		return "(" + a + ") or (" + b + ")"
	}
	ids, times, links := q.rows(set)
	id := newGUID(r)
	if len(ids) > 0 && r.IntN(4) != 0 {
		id = pick(r, ids)
	}
	tm := formatTime(equivStart.Add(time.Duration(r.IntN(100)-50) * time.Millisecond))
	if len(times) > 0 && r.IntN(4) != 0 {
		tm = pick(r, times)
	}
	op := pick(r, []string{"eq", "ne", "gt", "ge", "lt", "le"})
	switch r.IntN(10) {
	case 0, 1:
		return fmt.Sprintf("LastMutationDate gt %s or (LastMutationDate eq %s and ID gt %s)", tm, tm, id)
	case 2:
		return "LastMutationDate " + op + " " + tm
	case 3:
		return tm + " " + op + " LastMutationDate"
	case 4:
		return "ID " + op + " " + id
	case 5:
		nav := pick(r, []string{flavourOrganization, flavourPerson, "Relation", "Status"})
		target := newGUID(r)
		if len(links) > 0 && r.IntN(5) != 0 {
			target = pick(r, links)
		}
		terms := []string{nav + "/ID eq " + target}
		if r.IntN(2) == 0 && len(links) > 0 {
			terms = append(terms, nav+"/ID eq "+pick(r, links))
		}
		return strings.Join(terms, " or ")
	case 6:
		return fmt.Sprintf("LastMutationDate eq %s and ID %s %s", tm, op, id)
	case 7:
		return "contains(_Name,'" + pick(r, []string{"a", "e", "B", "edit"}) + "')"
	case 8:
		return q.textTerm(set)
	}
	return "LastMutationDate ge " + tm
}

// textTerm is a lookup by e-mail or name, as crmsync's Find sends them,
// with a value of a row of the set (or of a linked relation) or another.
func (q *equiv) textTerm(set string) string {
	r := q.r
	path := pick(r, []string{"Name", "EmailAddress", "LastName", "ImportId"})
	if fl, _, ok := parseFunnelSet(set); ok && r.IntN(2) == 0 {
		path = fl + "/" + pick(r, []string{"Name", "EmailAddress", "LastName"})
	}
	vals := []string{"Co 5", "co 5", "nobody@example.com"}
	q.em.mu.RLock()
	for _, e := range q.em.st.rows[set] {
		if v, ok := q.em.st.pathValue(e, strings.Split(path, "/")).(string); ok {
			vals = append(vals, v, strings.ToLower(v), strings.ToUpper(v))
		}
	}
	q.em.mu.RUnlock()
	slices.Sort(vals)
	v := strings.ReplaceAll(pick(r, vals), "'", "''")
	if r.IntN(2) == 0 {
		return "tolower(" + path + ") eq '" + v + "'"
	}
	if r.IntN(2) == 0 {
		return "'" + v + "' eq " + path
	}
	return path + " eq '" + v + "'"
}

// do sends a write and returns its status.
func (q *equiv) do(method, path string, body any) int {
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer dev-token")
	w := httptest.NewRecorder()
	q.em.ServeHTTP(w, req)
	return w.Code
}

// edit makes one random change and says what it was.
func (q *equiv) edit() string {
	r := q.r
	fl := pick(r, []string{flavourOrganization, flavourPerson})
	set := funnelSet(fl, pick(r, funnelStages))
	ids, _, _ := q.rows(set)
	relSet := relationOrganization
	child := map[string]any{"Name": fmt.Sprintf("Co %d", r.IntN(100))}
	if fl == flavourPerson {
		relSet, child = relationPerson, map[string]any{"LastName": fmt.Sprintf("Ann %d", r.IntN(100))}
	}
	relIDs, _, _ := q.rows(relSet)
	anyID := func(ids []string) string {
		if len(ids) == 0 {
			return newGUID(r)
		}
		return pick(r, ids)
	}
	switch r.IntN(11) {
	case 0, 1:
		body := map[string]any{"Relation": map[string]any{"ID": q.em.TenantID()}, fl: child}
		if len(relIDs) > 0 && r.IntN(2) == 0 {
			body[fl] = map[string]any{"ID": pick(r, relIDs)}
		}
		return fmt.Sprintf("POST %s: %d", set, q.do("POST", "/v1/odata/"+set, body))
	case 2:
		return fmt.Sprintf("POST %s: %d", relSet, q.do("POST", "/v1/odata/"+relSet, child))
	case 3:
		m := pick(r, []string{"PATCH", "PUT"})
		body := map[string]any{"Name": fmt.Sprintf("Renamed %d", r.IntN(100))}
		if r.IntN(2) == 0 {
			body = map[string]any{"SortIndex": float64(r.IntN(5))}
		}
		return fmt.Sprintf("%s %s: %d", m, set, q.do(m, "/v1/odata/"+set+"("+anyID(ids)+")", body))
	case 4:
		return fmt.Sprintf("PATCH %s: %d", relSet, q.do("PATCH", "/v1/odata/"+relSet+"("+anyID(relIDs)+")", map[string]any{"SortIndex": float64(r.IntN(5))}))
	case 5:
		to := funnelSet(fl, pick(r, funnelStages))
		return fmt.Sprintf("convert %s -> %s: %d", set, to, q.do("POST", "/v1/odata/"+set, map[string]any{"ID": anyID(ids), "_UpgradeType": to}))
	case 6:
		return fmt.Sprintf("DELETE %s: %d", set, q.do("DELETE", "/v1/odata/"+set+"("+anyID(ids)+")", nil))
	case 7:
		return fmt.Sprintf("DELETE %s: %d", relSet, q.do("DELETE", "/v1/odata/"+relSet+"("+anyID(relIDs)+")", nil))
	case 8:
		if r.IntN(3) == 0 {
			q.em.Touch()
			return "Touch all"
		}
		q.em.Touch(anyID(ids), anyID(relIDs))
		return "Touch"
	case 9:
		if r.IntN(2) == 0 {
			q.em.Freeze(time.Time{})
			return "unfreeze"
		}
		q.em.Freeze(equivStart.Add(time.Duration(r.IntN(40)) * time.Millisecond))
		return "freeze"
	}
	q.em.EditDuringPaging(1 + r.IntN(3))
	q.get("/v1/odata/"+set+"?$top=1", false)
	q.em.EditDuringPaging(0)
	return "edits during paging"
}

// checkIndexes returns "" when every set's indexes hold exactly its rows,
// sorted under their current keys, and its links.
func checkIndexes(em *Emulator) string {
	em.mu.RLock()
	defer em.mu.RUnlock()
	for set, rows := range em.st.rows {
		ix := em.st.idx[set]
		for name, s := range map[string][]*entity{"byLMD": ix.byLMD, "byDef": ix.byDef} {
			if len(s) != len(rows) {
				return fmt.Sprintf("%s %s holds %d rows, the set %d", set, name, len(s), len(rows))
			}
			cmp := cmpLMD
			if name == "byDef" {
				cmp = cmpDef
			}
			for i, e := range s {
				if rows[e.id] != e {
					return fmt.Sprintf("%s %s holds %s, not a row of the set", set, name, e.id)
				}
				if e.ix != keysOf(e) {
					return fmt.Sprintf("%s %s: %s is indexed under stale keys", set, name, e.id)
				}
				if i > 0 && cmp(s[i-1], e) >= 0 {
					return fmt.Sprintf("%s %s out of order at %d", set, name, i)
				}
			}
		}
		links := 0
		for _, e := range rows {
			for nav, id := range e.nav {
				if _, ok := ix.linked(nav, id)[e]; !ok {
					return fmt.Sprintf("%s: link %s of %s is not indexed", set, nav, e.id)
				}
				links++
			}
		}
		for _, byTarget := range ix.byNav {
			for _, es := range byTarget {
				links -= len(es)
			}
		}
		if links != 0 {
			return fmt.Sprintf("%s: %d stale links indexed", set, -links)
		}
		texts := 0
		for _, e := range rows {
			for _, p := range textProps {
				if v, ok := e.props[p].(string); ok {
					if _, ok := ix.byText[p][strings.ToLower(v)][e]; !ok {
						return fmt.Sprintf("%s: %s of %s is not indexed", set, p, e.id)
					}
					texts++
				}
			}
		}
		for _, byVal := range ix.byText {
			for _, es := range byVal {
				texts -= len(es)
			}
		}
		if texts != 0 {
			return fmt.Sprintf("%s: %d stale text values indexed", set, -texts)
		}
	}
	return ""
}
