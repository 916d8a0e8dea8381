package emulator

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmsync/crmsync/connectors/emukit"
)

// timeLayout is how Laravel (7+) serialises model timestamps.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// row is one stored record. vals holds every column under its documented
// (snake_case) name with a typed value: string, int64, bool or nil.
type row struct {
	id      int64
	vals    map[string]any
	created time.Time
	updated time.Time
}

// table is one emulated database table.
// newRow takes the table's next id and returns a row stamped now, with
// every column null and then the table's defaults, as a fresh database row
// is. The caller holds the emulator's lock.
func (t *table) newRow(now time.Time) *row {
	rw := &row{id: t.nextID, vals: map[string]any{}, created: now, updated: now}
	t.nextID++
	for _, col := range t.c.Columns {
		rw.vals[col.Name] = nil
	}
	for k, v := range t.c.Defaults {
		rw.vals[k] = v
	}
	return rw
}

type table struct {
	c       *collection
	rows    map[int64]*row
	nextID  int64
	version uint64
	// cache of sorted orders for the current version, keyed by sort spec.
	cacheVersion uint64
	cache        map[string][]*row
}

func newTable(c *collection) *table {
	return &table{c: c, rows: map[int64]*row{}, nextID: 1, cache: map[string][]*row{}}
}

func (t *table) touch() { t.version++ }

// sortKey is one requested sort: a column and a direction.
type sortKey struct {
	col  string // id, created_at, updated_at
	desc bool
}

// ordered returns the rows in the requested order. When the sort does not
// end on the unique id, rows that tie are ordered by tie (MySQL returns ties
// of an ORDER BY ... LIMIT in no guaranteed order, and the order can change
// with the LIMIT/OFFSET; see Options.StableTies).
func (t *table) ordered(keys []sortKey, tie func(id int64) uint64) []*row {
	spec := fmt.Sprint(keys)
	cacheable := tie == nil
	if cacheable {
		if t.cacheVersion != t.version {
			t.cache = map[string][]*row{}
			t.cacheVersion = t.version
		}
		if rs, ok := t.cache[spec]; ok {
			return rs
		}
	}
	rs := make([]*row, 0, len(t.rows))
	for _, r := range t.rows {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		for _, k := range keys {
			c := compareCol(a, b, k.col)
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		if tie != nil {
			ta, tb := tie(a.id), tie(b.id)
			if ta != tb {
				return ta < tb
			}
		}
		return a.id < b.id
	})
	if cacheable {
		t.cache[spec] = rs
	}
	return rs
}

func compareCol(a, b *row, col string) int {
	switch col {
	case "created_at":
		return a.created.Compare(b.created)
	case "updated_at":
		return a.updated.Compare(b.updated)
	default:
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	}
}

// tieHash is the unstable tie order: it depends on the page requested, like
// a filesort with a different LIMIT.
func tieHash(page, perPage int) func(id int64) uint64 {
	return func(id int64) uint64 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%d/%d", page, perPage, id)
		return h.Sum64()
	}
}

// validationError collects Laravel validation messages in rule order.
type validationError struct {
	keys []string
	msgs map[string][]string
}

func (v *validationError) add(key, msg string) {
	if v.msgs == nil {
		v.msgs = map[string][]string{}
	}
	if _, ok := v.msgs[key]; !ok {
		v.keys = append(v.keys, key)
	}
	v.msgs[key] = append(v.msgs[key], msg)
}

func (v *validationError) empty() bool { return len(v.keys) == 0 }

// body is the 422 answer: the first message, "(and N more error[s])", and
// every message per key.
func (v *validationError) body() obj {
	n := 0
	for _, k := range v.keys {
		n += len(v.msgs[k])
	}
	msg := v.msgs[v.keys[0]][0]
	if more := n - 1; more > 0 {
		word := "errors"
		if more == 1 {
			word = "error"
		}
		msg = fmt.Sprintf("%s (and %d more %s)", msg, more, word)
	}
	errs := obj{}
	for _, k := range v.keys {
		var list []any
		for _, m := range v.msgs[k] {
			list = append(list, m)
		}
		errs = append(errs, kv{k, list})
	}
	return obj{{"message", msg}, {"errors", errs}}
}

// normaliseInput applies Laravel's global TrimStrings and
// ConvertEmptyStringsToNull middleware to decoded input.
func normaliseInput(v any) any {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return nil
		}
		return s
	case map[string]any:
		for k, e := range x {
			x[k] = normaliseInput(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normaliseInput(e)
		}
		return x
	}
	return v
}

// resolveKeys finds, for every column, the input key that carries it.
// Strict (lenient false), only the spelling n counts: a key in the other
// spelling is dropped like an unknown key, as $request->validated() keeps
// only the keys that have a rule and a Laravel app has rules in one
// spelling. Lenient, either spelling counts (n wins when a client sends
// both).
func resolveKeys(c *collection, in map[string]any, n Naming, lenient bool) map[string]string {
	out := map[string]string{}
	for k := range in {
		snake := toSnake(k)
		if _, ok := c.byName[snake]; !ok {
			continue
		}
		own := spell(snake, n) == k
		if !own && !lenient {
			continue
		}
		if _, ok := out[snake]; ok && !own {
			continue
		}
		out[snake] = k
	}
	return out
}

// validate checks input against the collection's rules and returns the
// typed values to store, by column. creating selects the store rules
// (name required) over the update rules (name validated only when sent).
// n and lenient select the input keys (resolveKeys).
func (e *Emulator) validate(c *collection, in map[string]any, creating bool, n Naming, lenient bool) (map[string]any, *validationError) {
	keys := resolveKeys(c, in, n, lenient)
	verr := &validationError{}
	vals := map[string]any{}
	for _, col := range c.Columns {
		key, present := keys[col.Name]
		if !present {
			key = spell(col.Name, n)
		}
		attr := laravelAttribute(key)
		raw := in[key]
		if col.Name == "name" {
			if !present && !creating {
				continue
			}
			if raw == nil {
				verr.add(key, fmt.Sprintf("The %s field is required.", attr))
				continue
			}
			s, ok := raw.(string)
			if !ok {
				verr.add(key, fmt.Sprintf("The %s field must be a string.", attr))
				continue
			}
			if utf8.RuneCountInString(s) < 2 {
				verr.add(key, fmt.Sprintf("The %s field must be at least 2 characters.", attr))
				continue
			}
			if utf8.RuneCountInString(s) > 255 {
				verr.add(key, fmt.Sprintf("The %s field must not be greater than 255 characters.", attr))
				continue
			}
			vals[col.Name] = s
			continue
		}
		if !present {
			continue
		}
		switch col.Kind {
		case kString:
			if raw == nil {
				vals[col.Name] = nil
				continue
			}
			s, ok := raw.(string)
			if !ok {
				verr.add(key, fmt.Sprintf("The %s field must be a string.", attr))
				continue
			}
			if col.Name != "comment" && utf8.RuneCountInString(s) > 255 {
				verr.add(key, fmt.Sprintf("The %s field must not be greater than 255 characters.", attr))
				continue
			}
			vals[col.Name] = s
		case kEmail:
			if raw == nil {
				vals[col.Name] = nil
				continue
			}
			s, ok := raw.(string)
			if !ok || !validEmail(s) {
				verr.add(key, fmt.Sprintf("The %s field must be a valid email address.", attr))
				continue
			}
			vals[col.Name] = s
		case kInt:
			if raw == nil {
				vals[col.Name] = nil
				continue
			}
			n, ok := asInt(raw)
			if !ok {
				verr.add(key, fmt.Sprintf("The %s field must be an integer.", attr))
				continue
			}
			if col.Name == "prospection_code_id" && !e.codeExists(n) {
				verr.add(key, fmt.Sprintf("The selected %s is invalid.", attr))
				continue
			}
			vals[col.Name] = n
		case kBool:
			b, ok := asBool(raw)
			if !ok {
				verr.add(key, fmt.Sprintf("The %s field must be true or false.", attr))
				continue
			}
			vals[col.Name] = b
		}
	}
	if !verr.empty() {
		return nil, verr
	}
	return vals, nil
}

// validEmail approximates Laravel's "email" rule (RFC validation): one
// bare address with a local part and a domain.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1
}

// asInt accepts what Laravel's "integer" rule accepts: an integral JSON
// number or a string of digits.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		return n, err == nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), true
		}
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	case bool:
		return 0, false
	}
	return 0, false
}

// asBool accepts what Laravel's "boolean" rule accepts: true, false, 1, 0,
// "1" and "0" (not "true" or null).
func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case json.Number:
		switch x.String() {
		case "1":
			return true, true
		case "0":
			return false, true
		}
	case float64:
		switch x {
		case 1:
			return true, true
		case 0:
			return false, true
		}
	case string:
		switch x {
		case "1":
			return true, true
		case "0":
			return false, true
		}
	}
	return false, false
}

// encodeRow renders a row as the API does, in naming n.
func encodeRow(c *collection, r *row, n Naming) obj {
	o := make(obj, 0, len(c.Columns)+3)
	o = append(o, kv{"id", r.id})
	for _, col := range c.Columns {
		o = append(o, kv{spell(col.Name, n), r.vals[col.Name]})
	}
	o = append(o, kv{"created_at", r.created.UTC().Format(timeLayout)}, kv{"updated_at", r.updated.UTC().Format(timeLayout)})
	return o
}

// seedBase is where seeded timestamps start.
var seedBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seedTimes returns deterministic past timestamps for seed number i: one
// minute apart, and within every block of ten records the last four share
// one updated_at exactly.
func seedTimes(i int) (created, updated time.Time) {
	created = seedBase.Add(time.Duration(i) * time.Minute)
	if i%10 >= 6 {
		return created, seedBase.Add(time.Duration(i-i%10+9)*time.Minute + 30*time.Second)
	}
	return created, created.Add(time.Duration(i%6*7) * time.Second)
}

var naf = map[string]string{
	"Software": "6201Z", "Manufacturing": "2599B", "Retail": "4719B", "Healthcare": "8622C",
	"Logistics": "5229A", "Finance": "6419Z", "Energy": "3511Z", "Education": "8559A",
	"Hospitality": "5510Z", "Construction": "4120A", "Telecommunications": "6110Z", "Agriculture": "0111Z",
}

// seedRow builds seeded record i (0-based) of c from fake profile p.
func seedRow(c *collection, id int64, i int, p emukit.Profile) *row {
	vals := map[string]any{}
	for _, col := range c.Columns {
		vals[col.Name] = nil
	}
	for k, v := range c.Defaults {
		vals[k] = v
	}
	legal := p.Company[strings.LastIndexByte(p.Company, ' ')+1:]
	set := func(k string, v any) { vals[k] = v }
	set("name", p.Company)
	set("customer_account", c.account(id))
	set("registration_number", p.RegistrationNumber)
	set("tax_registration_number", p.VATNumber)
	set("type", legal)
	set("activity_code", naf[p.Industry])
	set("sector_id", int64(1+i%8))
	set("email_address", p.Email)
	set("account_email_address", "billing@"+p.Domain)
	set("phone", p.Phone)
	set("mobile_phone", p.Mobile)
	set("main_contact_first_name", p.FirstName)
	set("main_contact_last_name", p.LastName)
	set("main_address_line1", p.Street)
	set("main_address_postal_code", p.PostalCode)
	set("main_address_city", p.City)
	set("main_address_country", p.Country)
	set("website", p.Website)
	set("active", i%17 != 0)
	set("merge_invoices", i%5 == 0)
	set("accept_emails", i%9 != 0)
	set("accept_calls", i%11 != 0)
	if i%4 != 0 {
		set("representative_id", int64(1+i%3))
	}
	if i%3 == 0 {
		set("cluster_id", int64(1+i%4))
	}
	if i%4 == 1 {
		set("capital", strconv.Itoa(10000*(1+i%50)))
	}
	if i%6 == 0 {
		set("comment", "Met at a trade fair; asked for a callback.")
	}
	if c.Name == Prospects {
		set("prospection_code_id", int64(1+i%5))
	} else {
		set("prospection_code_id", int64(5))
		set("vip", i%13 == 0)
	}
	created, updated := seedTimes(i)
	return &row{id: id, vals: vals, created: created, updated: updated}
}
