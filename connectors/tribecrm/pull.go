package tribecrm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// How Pull finds changes
//
// A pull is a pass over "steps": the funnel sets in funnel order
// (organisation Suspect..Customer, then person Suspect..Customer), then, to
// notice edits of an organisation or person (which bump that relation's
// LastMutationDate but not the relationship's), Relation_Organization and
// Relation_Person.
//
// Each step is read with a keyset on (LastMutationDate, ID):
//
//	$filter=LastMutationDate gt T or (LastMutationDate eq T and ID gt G)
//	$orderby=LastMutationDate asc,ID asc&$top=N
//
// so any number of rows sharing one timestamp page correctly, and a row
// edited while we page moves behind the cursor's end and is read later in
// the same pass. A step is done when a page comes back shorter than $top
// with no @odata.nextLink.
//
// The overlap. A row becomes visible at most Overlap (1 s) after its
// LastMutationDate (commit lag, clock skew between servers; the frozen
// clock of a test is the extreme case). A pass can therefore miss only rows
// that became visible after it had read past their place, and those are
// stamped after R-Overlap, where R is the server's time (its Date header,
// less the request's duration) when the pass sent the step's first page:
// every row stamped earlier was visible before that page. So the first
// page of a step in the next pass starts at R-Overlap, inclusive, when that
// is at or before the saved position, and exactly after the saved position
// otherwise. In a quiet system the second pass after the last write starts
// exactly at the cursor and reads nothing. Without a Date header R is
// unknown and the page starts Overlap before the saved position, as it
// always did. The engine dedupes what is read twice.
//
// A relation step reads relation IDs the same way, then fetches the
// relationships that link them (Organization/ID eq ... or ..., per funnel set
// of that flavour), so an edited organisation's relationships are returned.
// The Address step does the same for addresses, which are entities of their
// own (docs/api/entities/addresses) with their own LastMutationDate: it
// fetches the relationships whose Organization/VisitingAddress,
// Organization/PostalAddress or Person/Address is a changed address.
//
// Funnel sets are read in funnel order because conversions mostly move
// forward: a relationship converted mid-pass is seen either in its old set
// (read already) or its new one (read later). Every conversion bumps
// LastMutationDate, so the next pass sees it in its new set in any case.
//
// On a pass started from a nil cursor with no Since (a full scan), the
// relation steps start after the newest relation row read at the start of
// the pass: everything older is already reflected in the expanded
// relationships the funnel steps read afterwards.

// pullPos is a keyset position in one step.
type pullPos struct {
	T  string `json:"t,omitempty"`  // LastMutationDate exactly as the API wrote it
	ID string `json:"id,omitempty"` // ID of the last row read at T; "" = from T inclusive
	// Read is the server's time when the last pass sent this step's first
	// page (its Date less the request's duration); "" when unknown.
	Read string `json:"read,omitempty"`
}

// pullCursor is the Pull cursor (version 1), stored by the engine as JSON.
type pullCursor struct {
	V      int                `json:"v"`
	Step   string             `json:"step,omitempty"`   // step being read; "" = a new pass starts
	Page   int                `json:"page,omitempty"`   // pages read in Step during this pass
	Full   bool               `json:"full,omitempty"`   // this pass reads every record
	Pos    map[string]pullPos `json:"pos,omitempty"`    // per step (entity-set name)
	Counts map[string]int     `json:"counts,omitempty"` // @odata.count of funnel sets entered in this pass
}

const cursorVersion = 1

// relationChunk is how many relation IDs go into one "or" filter.
const relationChunk = 40

func (c *Client) steps() []string {
	steps := append([]string(nil), c.sets...)
	if c.watchRel {
		steps = append(steps, watchedSets...)
	}
	return steps
}

// watchedSets are the steps after the funnel sets: the relations and
// addresses whose edits do not move their relationship's LastMutationDate.
var watchedSets = []string{SetOrganization, SetPerson, SetAddress}

// Pull returns the next page of changed commercial relationships across the
// funnel sets. Records carry Entity = their entity set and their
// Organization or Person expanded. Page.Total is the sum of the
// @odata.count of the funnel sets entered so far in this pass (it grows as
// the pass enters new sets), or -1 before any is known. A page may be empty
// with Done false (a stretch of edited relations that no relationship
// links): call Pull again with Next.
func (c *Client) Pull(ctx context.Context, cursor connectors.Cursor, opts connectors.PullOptions) (connectors.Page, error) {
	steps := c.steps()
	var st pullCursor
	if len(cursor) == 0 {
		st = pullCursor{V: cursorVersion, Pos: map[string]pullPos{}}
		if !opts.Since.IsZero() {
			for _, s := range steps {
				st.Pos[s] = pullPos{T: formatTime(opts.Since)}
			}
		} else {
			st.Full = true
			if c.watchRel {
				for _, s := range watchedSets {
					p, err := c.latest(ctx, s)
					if err != nil {
						return connectors.Page{}, err
					}
					st.Pos[s] = p
				}
			}
		}
	} else {
		if err := json.Unmarshal(cursor, &st); err != nil {
			return connectors.Page{}, fmt.Errorf("tribecrm: unreadable cursor: %w", err)
		}
		if st.V != cursorVersion {
			return connectors.Page{}, fmt.Errorf("tribecrm: cursor version %d is not supported", st.V)
		}
		if st.Pos == nil {
			st.Pos = map[string]pullPos{}
		}
	}
	if !slices.Contains(steps, st.Step) {
		st.Step, st.Page = steps[0], 0
	}
	if st.Counts == nil {
		st.Counts = map[string]int{}
	}
	size := opts.PageSize
	if size <= 0 {
		size = c.pageSize
	}
	if opts.WantTotal && len(st.Counts) == 0 && st.Page == 0 && st.Step == steps[0] {
		if err := c.countPass(ctx, &st); err != nil {
			return connectors.Page{}, err
		}
	}

	var page connectors.Page
	for iter := 0; ; iter++ {
		var (
			recs      []connectors.Record
			exhausted bool
			err       error
		)
		if _, _, ok := ParseFunnelSet(st.Step); ok {
			recs, exhausted, err = c.pullSet(ctx, &st, size)
		} else {
			recs, exhausted, err = c.pullRelations(ctx, &st, size)
		}
		if err != nil {
			return connectors.Page{}, err
		}
		page.Records = append(page.Records, recs...)
		st.Page++
		if exhausted {
			i := slices.Index(steps, st.Step) + 1
			if i == len(steps) {
				page.Done = true
			} else {
				st.Step, st.Page = steps[i], 0
			}
		}
		if len(page.Records) > 0 || page.Done || iter >= 2*len(steps) {
			break
		}
	}
	page.Total = -1
	if len(st.Counts) > 0 {
		page.Total = 0
		for _, n := range st.Counts {
			page.Total += n
		}
	}
	page.FullScan = st.Full
	if page.Done {
		st.Step, st.Page, st.Full, st.Counts = "", 0, false, nil
	}
	next, err := json.Marshal(st)
	if err != nil {
		return connectors.Page{}, fmt.Errorf("tribecrm: encode cursor: %w", err)
	}
	page.Next = next
	return page, nil
}

// countPass fills the pass's counts of every funnel set up front ($top=0
// with $count=true and the same filter as the set's first page), so that
// Page.Total is the whole pass's size from the first page on.
func (c *Client) countPass(ctx context.Context, st *pullCursor) error {
	for _, set := range c.sets {
		q := query("$filter", c.keysetFilter(st.Pos[set], true, st.Full), "$top", "0", "$count", "true")
		lr, err := c.getList(ctx, c.root+"/"+set+q, "count "+set)
		if err != nil {
			return err
		}
		if lr.Count != nil {
			st.Counts[set] = *lr.Count
		}
	}
	return nil
}

// keysetFilter returns the $filter of the next page of a step. The first
// page of a step re-reads the overlap behind the saved position (see
// overlapFrom), except in a full-scan pass, whose only saved positions (the
// relation steps') were taken at the start of the same pass.
func (c *Client) keysetFilter(p pullPos, first, full bool) string {
	switch {
	case p.T == "":
		return ""
	case first && !full:
		if from, ok := c.overlapFrom(p); ok {
			return "LastMutationDate ge " + from
		}
	}
	if p.ID == "" {
		return "LastMutationDate ge " + p.T
	}
	return "LastMutationDate gt " + p.T + " or (LastMutationDate eq " + p.T + " and ID gt " + p.ID + ")"
}

// overlapFrom returns where the first page of an incremental step starts
// when it must re-read behind the saved position p, or false when the last
// pass read p more than the overlap after p's own time, so that nothing at
// or before p can still appear (see "The overlap" at the top of this file).
func (c *Client) overlapFrom(p pullPos) (string, bool) {
	t, ok := parseTime(p.T)
	if !ok {
		return p.T, true
	}
	read, ok := parseTime(p.Read)
	if !ok {
		return formatTime(t.Add(-c.overlap)), true
	}
	from := read.Add(-c.overlap)
	if from.After(t) {
		return "", false
	}
	return formatTime(from), true
}

// readKeyset reads one keyset page of a step and moves its position.
func (c *Client) readKeyset(ctx context.Context, st *pullCursor, size int, extra ...string) ([]item, bool, error) {
	set := st.Step
	first := st.Page == 0
	kv := []string{
		"$filter", c.keysetFilter(st.Pos[set], first, st.Full),
		"$orderby", "LastMutationDate asc,ID asc",
		"$top", strconv.Itoa(size),
	}
	kv = append(kv, extra...)
	if first {
		kv = append(kv, "$count", "true")
	}
	sent := time.Now()
	lr, err := c.getList(ctx, c.root+"/"+set+query(kv...), "pull "+set)
	if err != nil {
		return nil, false, err
	}
	pos := st.Pos[set]
	if n := len(lr.Value); n > 0 {
		last := lr.Value[n-1]
		t, _ := last["LastMutationDate"].(string)
		id, _ := last["ID"].(string)
		if t == "" || id == "" {
			return nil, false, &connectors.Error{System: System, Op: "pull " + set, Kind: connectors.Retryable, Message: "row without LastMutationDate or ID"}
		}
		pos.T, pos.ID = t, id
	}
	if first {
		pos.Read = readTime(lr.Date, time.Since(sent))
	}
	st.Pos[set] = pos
	if first && lr.Count != nil && navOf(set) != "" {
		st.Counts[set] = *lr.Count
	}
	// A page shorter than $top ends the step, unless the server capped it
	// (then it says so with @odata.nextLink). We continue from the keyset,
	// not from the nextLink: its $skip would skip rows edited meanwhile.
	exhausted := len(lr.Value) == 0 || (len(lr.Value) < size && lr.NextLink == "")
	return lr.Value, exhausted, nil
}

// readTime is the server's time when a request was sent, as the reply
// shows it: its Date (whole seconds, at or before the reply was made) less
// how long the request took, so never after the server read the data; ""
// without a Date.
func readTime(date time.Time, took time.Duration) string {
	if date.IsZero() {
		return ""
	}
	return formatTime(date.Add(-took))
}

func (c *Client) pullSet(ctx context.Context, st *pullCursor, size int) ([]connectors.Record, bool, error) {
	set := st.Step
	items, exhausted, err := c.readKeyset(ctx, st, size, "$expand", expandFor(set))
	if err != nil {
		return nil, false, err
	}
	recs := make([]connectors.Record, 0, len(items))
	for _, it := range items {
		rec, err := toRecord(set, it)
		if err != nil {
			return nil, false, &connectors.Error{System: System, Op: "pull " + set, Kind: connectors.Retryable, Err: err}
		}
		recs = append(recs, rec)
	}
	return recs, exhausted, nil
}

// pullRelations reads a page of changed organisations, persons or
// addresses and returns the commercial relationships that link them.
func (c *Client) pullRelations(ctx context.Context, st *pullCursor, size int) ([]connectors.Record, bool, error) {
	items, exhausted, err := c.readKeyset(ctx, st, size, "$select", "ID,LastMutationDate")
	if err != nil {
		return nil, false, err
	}
	ids := make([]string, 0, len(items))
	for _, it := range items {
		if id, _ := it["ID"].(string); isGUID(id) {
			ids = append(ids, strings.ToLower(id))
		}
	}
	var recs []connectors.Record
	for _, set := range c.sets {
		paths := linkPaths(st.Step, navOf(set))
		if len(paths) == 0 {
			continue
		}
		chunkSize := max(1, relationChunk/len(paths))
		for start := 0; start < len(ids); start += chunkSize {
			chunk := ids[start:min(start+chunkSize, len(ids))]
			var terms []string
			for _, id := range chunk {
				for _, p := range paths {
					terms = append(terms, p+"/ID eq "+id)
				}
			}
			rows, err := c.getAll(ctx, c.root+"/"+set+query("$filter", strings.Join(terms, " or "), "$expand", expandFor(set)), "pull "+set)
			if err != nil {
				return nil, false, err
			}
			for _, it := range rows {
				rec, err := toRecord(set, it)
				if err != nil {
					return nil, false, &connectors.Error{System: System, Op: "pull " + set, Kind: connectors.Retryable, Err: err}
				}
				recs = append(recs, rec)
			}
		}
	}
	return recs, exhausted, nil
}

// linkPaths are the paths from a relationship of flavour to a row of step:
// its Organization or Person, or that relation's addresses.
func linkPaths(step, flavour string) []string {
	switch {
	case step == SetAddress:
		var out []string
		for _, a := range addressNavs(flavour) {
			out = append(out, flavour+"/"+a)
		}
		return out
	case flavourOfRelationSet(step) == flavour:
		return []string{flavour}
	}
	return nil
}

// latest returns the keyset position of the newest row of a set (zero when
// the set is empty).
func (c *Client) latest(ctx context.Context, set string) (pullPos, error) {
	lr, err := c.getList(ctx, c.root+"/"+set+query("$select", "ID,LastMutationDate", "$orderby", "LastMutationDate desc,ID desc", "$top", "1"), "pull "+set)
	if err != nil || len(lr.Value) == 0 {
		return pullPos{}, err
	}
	t, _ := lr.Value[0]["LastMutationDate"].(string)
	id, _ := lr.Value[0]["ID"].(string)
	return pullPos{T: t, ID: id}, nil
}
