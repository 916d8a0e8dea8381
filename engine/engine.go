package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// Metrics receives counters from runs. All methods must be safe for
// concurrent use. A nil Metrics is allowed.
type Metrics interface {
	// Records adds n records with the given outcome (pulled, created, ...)
	// for a flow and system.
	Records(flow, system, outcome string, n int)
	// RunDone reports a finished run.
	RunDone(flow string, mode Mode, d time.Duration, err error)
	// DeadLetters reports how many dead letters a flow holds after a run.
	DeadLetters(flow string, n int)
}

// Options builds an Engine.
type Options struct {
	Systems map[string]*System
	Store   *state.Store
	Logger  zerolog.Logger
	Metrics Metrics
	// Now and NewID are injectable for tests; defaults time.Now and UUIDv4.
	Now   func() time.Time
	NewID func() string
}

// Engine runs flows. Runs are serialised: one run at a time per engine, so
// two flows never write the same target concurrently.
type Engine struct {
	o  Options
	mu sync.Mutex
}

// New returns an Engine.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, errors.New("engine: no state store")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.NewString() }
	}
	return &Engine{o: o}, nil
}

// RunOptions tunes one run.
type RunOptions struct {
	Mode Mode
	// Since starts a backfill at this time (zero: from the beginning).
	Since time.Time
	// Stop, when closed, ends the run after the page in hand is committed.
	Stop <-chan struct{}
	// Progress is called after every handled page.
	Progress func(Progress)
}

// CursorKey is the state key of a flow's scheduled cursor.
func CursorKey(flow, source string) string { return "flow/" + flow + "/" + source }

// BackfillKey is the state key of a flow's backfill cursor.
func BackfillKey(flow string) string { return "backfill/" + flow }

// ReconcileKey is the state key holding when a flow last reconciled deletes.
func ReconcileKey(flow string) string { return "reconcile/" + flow }

// Run runs one flow once. The returned Result is never nil; err is the
// error that ended the run early, if any.
func (e *Engine) Run(ctx context.Context, f Flow, ro RunOptions) (*Result, error) {
	if ro.Mode == "" {
		ro.Mode = ModeSync
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	res := &Result{Flow: f.Name, Mode: ro.Mode, Started: e.o.Now().UTC(), Systems: map[string]*Counts{}}
	r, err := e.newRun(f, ro, res)
	if err == nil {
		err = r.do(ctx)
	}
	e.finish(res, ro.Mode, err)
	return res, err
}

func (e *Engine) finish(res *Result, mode Mode, err error) {
	res.Finished = e.o.Now().UTC()
	if err != nil {
		res.Error = err.Error()
	}
	if mode != ModePlan {
		b := &state.Batch{}
		run := state.Run{Flow: res.Flow, Started: res.Started, Finished: res.Finished, Counts: map[string]map[string]int{}, Error: res.Error, Mode: string(mode)}
		for sys, c := range res.Systems {
			run.Counts[sys] = c.asMap()
		}
		b.PutRun(run)
		if cerr := e.o.Store.Commit(b); cerr != nil && res.Error == "" {
			res.Error = fmt.Sprintf("record run: %v", cerr)
		}
	}
	if e.o.Metrics != nil {
		for sys, c := range res.Systems {
			for k, n := range c.asMap() {
				if n > 0 {
					e.o.Metrics.Records(res.Flow, sys, k, n)
				}
			}
		}
		e.o.Metrics.RunDone(res.Flow, mode, res.Finished.Sub(res.Started), err)
		if dls, derr := e.o.Store.DeadLetters(res.Flow); derr == nil {
			e.o.Metrics.DeadLetters(res.Flow, len(dls))
		}
	}
}

type run struct {
	e       *Engine
	f       Flow
	ro      RunOptions
	res     *Result
	src     *System
	targets []*targetSys
	log     zerolog.Logger
	plan    bool
	// bulk is true for a first sync (no cursor yet) or a backfill.
	bulk bool
	// failedRun holds source records (key → content hash) that failed in
	// this run, so a re-read of the same content is not tried again.
	failedRun map[string]string
	// pending holds canonical ids with an unresolved create intent, per target.
	pending map[string]map[string]bool
	// planned holds golden records changed in memory by a plan (which
	// commits nothing), so later pages see earlier ones.
	planned map[string]*funnel.Record
	mu      sync.Mutex // guards res, plan output and pending during concurrent writes
}

type targetSys struct {
	*System
	t       Target
	index   *matchIndex // built lazily for bulk creates
	keys    []string    // match keys the index holds
	creates int         // creates planned for this target in the current page
	imu     sync.Mutex
}

func (e *Engine) newRun(f Flow, ro RunOptions, res *Result) (*run, error) {
	src, ok := e.o.Systems[f.Source]
	if !ok {
		return nil, fmt.Errorf("flow %s: unknown source system %q", f.Name, f.Source)
	}
	r := &run{e: e, f: f, ro: ro, res: res, src: src, plan: ro.Mode == ModePlan,
		log:     e.o.Logger.With().Str("flow", f.Name).Str("mode", string(ro.Mode)).Logger(),
		pending: map[string]map[string]bool{}, planned: map[string]*funnel.Record{}, failedRun: map[string]string{}}
	res.counts(src.Name)
	for _, t := range f.Targets {
		ts, ok := e.o.Systems[t.System]
		if !ok {
			return nil, fmt.Errorf("flow %s: unknown target system %q", f.Name, t.System)
		}
		r.targets = append(r.targets, &targetSys{System: ts, t: t})
		r.pending[t.System] = map[string]bool{}
		res.counts(t.System)
	}
	if r.f.WriteConcurrency < 1 {
		r.f.WriteConcurrency = 1
	}
	if len(r.f.MatchKeys) == 0 {
		r.f.MatchKeys = DefaultMatchKeys()
	}
	if r.f.MaxRetries == 0 {
		r.f.MaxRetries = 10
	}
	return r, nil
}

// DefaultMatchKeys are the canonical fields tried, in order, to find an
// existing record before creating one.
func DefaultMatchKeys() []string {
	return []string{funnel.FieldEmail, funnel.FieldRegistrationNumber, funnel.FieldVATNumber, funnel.FieldName}
}

func (r *run) store() *state.Store { return r.e.o.Store }

func (r *run) do(ctx context.Context) error {
	for _, t := range r.targets {
		ins, err := r.store().Intents(t.Name)
		if err != nil {
			return fmt.Errorf("read intents: %w", err)
		}
		for _, in := range ins {
			if r.plan {
				r.pending[t.Name][in.ID] = true
				continue
			}
			if err := r.recoverIntent(ctx, t, in); err != nil {
				return err
			}
		}
	}
	if r.ro.Mode == ModeSync {
		if err := r.retryDeadLetters(ctx, ""); err != nil {
			return err
		}
	}
	key := CursorKey(r.f.Name, r.src.Name)
	if r.ro.Mode == ModeBackfill {
		key = BackfillKey(r.f.Name)
	}
	cur, err := r.store().Cursor(key)
	if err != nil {
		return fmt.Errorf("read cursor: %w", err)
	}
	r.bulk = cur == nil || r.ro.Mode == ModeBackfill
	pulled := 0
	for {
		if r.stopRequested() {
			r.res.Stopped = true
			r.log.Info().Msg("stop requested: ending run after the last committed page")
			return nil
		}
		page, err := r.src.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: r.src.PageSize, Since: r.ro.Since, WantTotal: r.ro.Progress != nil})
		if err != nil {
			return fmt.Errorf("pull from %s: %w", r.src.Name, err)
		}
		b := &state.Batch{}
		perr := r.handle(ctx, page.Records, b)
		if !r.plan {
			if perr == nil {
				next := page.Next
				if page.Done && r.ro.Mode == ModeBackfill {
					next = nil // a finished backfill starts afresh next time
				}
				b.SetCursor(key, next)
			}
			if err := r.store().Commit(b); err != nil {
				return fmt.Errorf("commit page: %w", err)
			}
		}
		if perr != nil {
			return perr
		}
		cur = page.Next
		r.res.Pages++
		pulled += len(page.Records)
		if r.ro.Progress != nil {
			r.ro.Progress(Progress{Flow: r.f.Name, Records: pulled, Pages: r.res.Pages, Total: page.Total})
		}
		if page.Done {
			break
		}
	}
	if r.ro.Mode == ModeSync && r.f.Deletes.Mode != "" && r.f.Deletes.Mode != "ignore" {
		return r.reconcileIfDue(ctx)
	}
	return nil
}

func (r *run) stopRequested() bool {
	if r.ro.Stop == nil {
		return false
	}
	select {
	case <-r.ro.Stop:
		return true
	default:
		return false
	}
}

func (r *run) count(system string, f func(c *Counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.res.counts(system))
}

// item is one source record being handled.
type item struct {
	native connectors.Record
	key    string // the source record's state key (see System.Key)
	golden *funnel.Record
	fp     state.Fingerprint
	mu     sync.Mutex // guards golden while target writes run concurrently
	failed bool
	// resync: the golden record took values from a target during this page,
	// so the source must hear of them: the source fingerprint is not stored.
	resync bool
}

// task is one write to one target.
type task struct {
	it     *item
	t      *targetSys
	op     string // create, update, convert
	out    mapping.Native
	prevID string
	prev   *state.Fingerprint
	diff   map[string]any
	// results
	done    *connectors.Record
	linked  bool // matched an existing record instead of creating one
	err     error
	payload map[string]any
	noEcho  bool // do not store the target's view hash (it holds edits the other side lacks)
}

// handle processes one page's records and fills b with their effects.
func (r *run) handle(ctx context.Context, recs []connectors.Record, b *state.Batch) error {
	var items []*item
	var tasks []*task
	for _, rec := range dedupe(recs, r.src.Key) {
		r.count(r.src.Name, func(c *Counts) { c.Pulled++ })
		it, ts, err := r.prepare(rec, b)
		if err != nil {
			return err
		}
		if it == nil {
			continue
		}
		items = append(items, it)
		tasks = append(tasks, ts...)
	}
	for _, t := range r.targets {
		t.creates = 0
	}
	for _, tk := range tasks {
		if tk.op == "create" {
			tk.t.creates++
		}
	}
	if !r.plan {
		if err := r.writeAhead(tasks); err != nil {
			return err
		}
	}
	fatal := r.execute(ctx, tasks)
	for _, tk := range tasks {
		r.apply(tk, b)
	}
	for _, it := range items {
		if it.failed {
			r.failedRun[it.key] = it.fp.Hash
		}
		// The source fingerprint records what was read, even when a target
		// failed: a failed target keeps a dead letter, which disables the
		// unchanged shortcut until it is resolved (see prepare).
		if !it.resync {
			b.PutFingerprint(r.src.Name, it.key, it.fp)
		}
		b.PutRecord(it.golden)
		if r.plan {
			// A plan commits nothing, so later pages must see this page's
			// golden records here. A sync reads them back from state, which
			// keeps memory flat however many records a run handles.
			r.planned[it.golden.ID] = it.golden
		}
	}
	return fatal
}

// writeAhead commits golden records and source links, then the intents of
// every create about to be sent, so a crash mid-page can be resolved
// without creating anything twice.
func (r *run) writeAhead(tasks []*task) error {
	var intents []state.Intent
	pre := &state.Batch{}
	for _, tk := range tasks {
		if tk.op == "create" {
			pre.PutRecord(tk.it.golden)
			intents = append(intents, state.Intent{ID: tk.it.golden.ID, System: tk.t.Name, Entity: tk.out.Entity,
				Match: r.matchFor(tk.t, tk.it.golden, tk.out), Payload: tk.out.Fields, Flow: r.f.Name, At: r.e.o.Now().UTC()})
		}
	}
	if len(intents) == 0 {
		return nil
	}
	if err := r.store().Commit(pre); err != nil {
		return fmt.Errorf("commit golden records before creates: %w", err)
	}
	if err := r.store().PutIntents(intents); err != nil {
		return fmt.Errorf("write create intents: %w", err)
	}
	return nil
}

// golden returns the golden record for canonical id (the in-run copy when
// an earlier page changed it), or nil.
func (r *run) goldenRecord(id string) (*funnel.Record, error) {
	if id == "" {
		return nil, nil
	}
	if g, ok := r.planned[id]; ok {
		return g, nil
	}
	return r.store().Record(id)
}

// prepare maps one source record, merges it into its golden record and
// decides the writes it needs.
func (r *run) prepare(rec connectors.Record, b *state.Batch) (*item, []*task, error) {
	view, err := r.src.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
	if err != nil {
		r.count(r.src.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, r.src.Name, "", rec, "map-inbound", err, rec.Fields)
		return nil, nil, nil
	}
	fp := state.Fingerprint{Hash: view.Fingerprint(), Entity: rec.Entity, At: rec.UpdatedAt, Source: state.FingerprintRead}
	key := r.src.Key(rec)
	if h, failed := r.failedRun[key]; failed && h == fp.Hash {
		return nil, nil, nil // failed earlier in this run (overlap re-read, retry pass): once per run is enough
	}
	canonID, err := r.store().Link(r.src.Name, key)
	if err != nil {
		return nil, nil, err
	}
	golden, err := r.goldenRecord(canonID)
	if err != nil {
		return nil, nil, err
	}
	prev, err := r.store().Fingerprint(r.src.Name, key)
	if err != nil {
		return nil, nil, err
	}
	if golden != nil && prev != nil && prev.Hash == fp.Hash && r.settled(golden) && !r.hasDeadLetter(golden) {
		for _, t := range r.targets {
			if t.t.Accepts(golden) {
				r.count(t.Name, func(c *Counts) { c.Unchanged++ })
			} else {
				r.count(t.Name, func(c *Counts) { c.Skipped++ })
			}
		}
		return nil, nil, nil
	}
	if !r.plan {
		b.DeleteDeadLetter(DeadLetterKey(r.f.Name, r.src.Name, r.src.Name+":"+rec.ID))
	}
	if golden == nil {
		golden = funnel.New(r.e.o.NewID())
	} else {
		golden = golden.Clone()
	}
	_, overridden := r.merge(golden, view, r.src, rec.UpdatedAt, r.lastView(r.src, prev))
	golden.Links[r.src.Name] = key
	// The source changed fields another system owns: its edit lost. Make the
	// owner's flows look at the record again, so they write the owner's
	// value back to this source.
	for owner := range overridden {
		if link := golden.Links[owner]; link != "" && !r.plan {
			if ofp, err := r.store().Fingerprint(owner, link); err == nil && ofp != nil {
				ofp.Hash = ""
				b.PutFingerprint(owner, link, *ofp)
			}
		}
	}
	// What this system holds, remembered for diffs (only for records that
	// go on: the unchanged shortcut above needs the hash alone).
	if out, err := r.src.Map.Outbound(view); err == nil {
		fp.Payload = PresentOnly(out.Fields, rec.Fields)
	}
	it := &item{native: rec, key: key, golden: golden, fp: fp}
	var tasks []*task
	for _, t := range r.targets {
		tk, err := r.decide(it, t, b)
		if err != nil {
			return nil, nil, err
		}
		if tk != nil {
			tasks = append(tasks, tk)
		}
	}
	return it, tasks, nil
}

// decide computes the write (if any) one target needs for an item.
func (r *run) decide(it *item, t *targetSys, b *state.Batch) (*task, error) {
	golden := it.golden
	if _, gone := golden.Gone[t.Name]; gone || !t.t.Accepts(golden) {
		r.count(t.Name, func(c *Counts) { c.Skipped++ })
		return nil, nil
	}
	out, err := t.Map.Outbound(golden)
	if err != nil {
		it.failed = true
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, golden.ID, it.native, "map-outbound", err, nil)
		return nil, nil
	}
	tid := golden.Links[t.Name]
	if tid == "" {
		if r.pending[t.Name][golden.ID] {
			// An earlier create's outcome is still unknown: never send a second one.
			it.failed = true
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			return nil, nil
		}
		return &task{it: it, t: t, op: "create", out: out}, nil
	}
	prevT, err := r.store().Fingerprint(t.Name, tid)
	if err != nil {
		return nil, err
	}
	var old map[string]any
	oldEntity := ""
	if prevT != nil {
		old, oldEntity = prevT.Payload, prevT.Entity
	} else {
		prevT = &state.Fingerprint{}
	}
	diff := DiffPayload(old, out.Fields)
	op := "update"
	if oldEntity != "" && out.Entity != "" && oldEntity != out.Entity {
		op = "convert"
	} else if len(diff) == 0 {
		r.count(t.Name, func(c *Counts) { c.Unchanged++ })
		return nil, nil
	}
	return &task{it: it, t: t, op: op, out: out, prevID: tid, prev: prevT, diff: diff}, nil
}

// lastView is what crmsync last knew a system held for a record, as a
// canonical view (nil when it never saw it).
func (r *run) lastView(sys *System, fp *state.Fingerprint) *funnel.Record {
	if fp == nil || fp.Payload == nil {
		return nil
	}
	v, err := sys.Map.Inbound(mapping.Native{Entity: fp.Entity, Fields: fp.Payload})
	if err != nil {
		return nil
	}
	return v
}

// hasDeadLetter reports whether a write of the record to one of the flow's
// targets is waiting in dead letters (so it must not be skipped as unchanged).
func (r *run) hasDeadLetter(g *funnel.Record) bool {
	for _, t := range r.targets {
		if d, err := r.store().DeadLetter(DeadLetterKey(r.f.Name, t.Name, g.ID)); err != nil || d != nil {
			return true
		}
	}
	return false
}

// settled reports whether every target that accepts the record holds it.
func (r *run) settled(g *funnel.Record) bool {
	for _, t := range r.targets {
		if t.t.Accepts(g) && g.Links[t.Name] == "" {
			return false
		}
	}
	return true
}

// execute runs the write tasks, per target with bounded concurrency. It
// returns the first error that must stop the run (retryable, auth,
// unexpected); rejected records are dead-lettered by apply.
func (r *run) execute(ctx context.Context, tasks []*task) error {
	var wg sync.WaitGroup
	sem := map[string]chan struct{}{}
	for _, t := range r.targets {
		sem[t.Name] = make(chan struct{}, r.f.WriteConcurrency)
	}
	var mu sync.Mutex
	var fatal error
	for _, tk := range tasks {
		s := sem[tk.t.Name]
		s <- struct{}{}
		mu.Lock()
		stop := fatal != nil
		mu.Unlock()
		if stop {
			<-s
			tk.err = errSkipped
			continue
		}
		wg.Add(1)
		go func(tk *task) {
			defer wg.Done()
			defer func() { <-s }()
			tk.err = r.write(ctx, tk)
			if tk.err != nil && isFatal(tk.err) {
				mu.Lock()
				if fatal == nil {
					fatal = fmt.Errorf("%s %s in %s: %w", tk.op, tk.it.golden.ID, tk.t.Name, tk.err)
				}
				mu.Unlock()
			}
		}(tk)
	}
	wg.Wait()
	return fatal
}

var errSkipped = errors.New("skipped after an earlier fatal error in this page")

// errAmbiguous marks a record that matches several records in a target.
type errAmbiguous struct{ msg string }

func (e *errAmbiguous) Error() string { return e.msg }

func isFatal(err error) bool {
	var amb *errAmbiguous
	if errors.As(err, &amb) {
		return false
	}
	switch connectors.KindOf(err) {
	case connectors.Rejected, connectors.NotFound, connectors.OutcomeUnknown:
		return false
	}
	return true
}

// write performs one task. In plan mode the same decisions are taken and
// the same reads done (lookups, conflict checks), but every mutating call
// is replaced by a recorded Change.
func (r *run) write(ctx context.Context, tk *task) error {
	conn := tk.t.Conn
	switch tk.op {
	case "create":
		found, err := r.findExisting(ctx, tk)
		if err != nil {
			return err
		}
		if found != nil {
			return r.linkExisting(ctx, tk, *found)
		}
		got, err := r.create(ctx, tk)
		if err != nil {
			return err
		}
		tk.t.remember(got)
		tk.done, tk.payload = &got, tk.out.Fields
	case "update", "convert":
		if tk.t.t.CheckBeforeWrite {
			if err := r.checkTarget(ctx, tk); err != nil {
				return err
			}
			if tk.op == "update" && len(tk.diff) == 0 {
				tk.done, tk.payload = nil, tk.prev.Payload
				return nil
			}
		}
		entity, id := tk.prev.Entity, tk.t.RawID(tk.prevID)
		var got connectors.Record
		if tk.op == "convert" {
			c, err := r.mutate(ctx, tk, "convert", func() (connectors.Record, error) {
				return conn.ConvertStage(ctx, tk.prev.Entity, tk.t.RawID(tk.prevID), tk.out.Entity)
			})
			if err != nil {
				return err
			}
			got, entity, id = c, c.Entity, c.ID
		}
		if len(tk.diff) > 0 {
			u, err := r.mutate(ctx, tk, "update", func() (connectors.Record, error) { return conn.Update(ctx, entity, id, tk.diff) })
			if err != nil {
				return err
			}
			got = u
		}
		tk.done, tk.payload = &got, MergePayload(tk.prev.Payload, tk.diff)
	}
	return nil
}

// create sends (or, in a plan, records) a create.
func (r *run) create(ctx context.Context, tk *task) (connectors.Record, error) {
	return r.mutate(ctx, tk, "create", func() (connectors.Record, error) {
		return tk.t.Conn.Create(ctx, connectors.Record{Entity: tk.out.Entity, Fields: tk.out.Fields})
	})
}

// mutate runs a write, or records it as a planned change.
func (r *run) mutate(ctx context.Context, tk *task, op string, do func() (connectors.Record, error)) (connectors.Record, error) {
	if !r.plan {
		return do()
	}
	g := tk.it.golden
	ch := Change{Target: tk.t.Name, Op: op, CanonicalID: g.ID, TargetID: tk.prevID, Entity: tk.out.Entity, Name: g.Str(funnel.FieldName)}
	var old map[string]any
	if tk.prev != nil {
		old = tk.prev.Payload
		ch.Entity = tk.prev.Entity
		if op == "convert" {
			ch.ToEntity = tk.out.Entity
		}
	}
	switch op {
	case "create":
		ch.Fields = FieldDiffs(nil, tk.out.Fields)
	case "update":
		ch.Fields = FieldDiffs(old, tk.diff)
	}
	r.mu.Lock()
	r.res.Plan = append(r.res.Plan, ch)
	r.mu.Unlock()
	id := tk.t.RawID(tk.prevID)
	if id == "" {
		id = "(new)"
	}
	return connectors.Record{Entity: tk.out.Entity, ID: id, Fields: tk.out.Fields}, nil
}

// checkTarget reads the linked record before writing to a two-way target:
// edits made there since crmsync last saw it are merged into the golden
// record (newest change wins, owners first) instead of being overwritten.
func (r *run) checkTarget(ctx context.Context, tk *task) error {
	cur, err := tk.t.Conn.Get(ctx, tk.prev.Entity, tk.t.RawID(tk.prevID))
	if err != nil {
		return err
	}
	view, err := tk.t.Map.Inbound(mapping.Native{Entity: cur.Entity, Fields: cur.Fields})
	if err != nil {
		return err
	}
	if view.Fingerprint() == tk.prev.Hash {
		return nil // nothing happened there since our last read or write
	}
	it := tk.it
	it.mu.Lock()
	changed, _ := r.merge(it.golden, view, tk.t.System, cur.UpdatedAt, r.lastView(tk.t.System, tk.prev))
	if changed {
		it.resync = true
	}
	out, err := tk.t.Map.Outbound(it.golden)
	it.mu.Unlock()
	if err != nil {
		return &connectors.Error{System: tk.t.Name, Op: "map-outbound", Kind: connectors.Rejected, Message: err.Error()}
	}
	base := tk.prev.Payload
	if cv, err := tk.t.Map.Outbound(view); err == nil {
		base = PresentOnly(cv.Fields, cur.Fields)
	}
	tk.out = out
	tk.diff = DiffPayload(base, out.Fields)
	tk.prev = &state.Fingerprint{Entity: cur.Entity, Payload: base, Hash: view.Fingerprint(), At: cur.UpdatedAt}
	tk.noEcho = changed
	r.log.Debug().Str("target", tk.t.Name).Str("id", tk.prevID).Bool("merged", changed).Msg("target changed since last sync: merged before writing")
	return nil
}

// apply records a finished task's effects in the page batch.
func (r *run) apply(tk *task, b *state.Batch) {
	name := tk.t.Name
	g := tk.it.golden
	if tk.err != nil {
		tk.it.failed = true
		if tk.err == errSkipped {
			return
		}
		r.count(name, func(c *Counts) { c.Failed++ })
		switch {
		case connectors.IsOutcomeUnknown(tk.err):
			r.log.Warn().Err(tk.err).Str("target", name).Str("id", g.ID).Msg("create outcome unknown: intent kept, resolved by lookup on the next run")
			r.mu.Lock()
			r.pending[name][g.ID] = true
			r.mu.Unlock()
		case isFatal(tk.err):
			if tk.op == "create" {
				b.DeleteIntent(name, g.ID)
			}
		default:
			if tk.op == "create" {
				b.DeleteIntent(name, g.ID)
			}
			r.deadLetter(b, name, g.ID, tk.it.native, tk.op, tk.err, tk.out.Fields)
		}
		return
	}
	if tk.done == nil { // nothing to write after a conflict merge
		if tk.prev != nil && tk.prevID != "" && !r.plan {
			// Remember the target's current view, so the next run does not
			// read and merge it again (unless it took values the source
			// lacks: then the reverse flow must see it).
			fp := *tk.prev
			if tk.noEcho {
				fp.Hash = ""
			}
			fp.Source = state.FingerprintRead
			b.PutFingerprint(name, tk.prevID, fp)
		}
		r.count(name, func(c *Counts) { c.Unchanged++ })
		return
	}
	got := tk.done
	hash := ""
	if !tk.noEcho {
		if view, err := tk.t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: got.Fields}); err == nil {
			hash = view.Fingerprint()
		}
	}
	gotKey := tk.t.Key(*got)
	if tk.prevID != "" && tk.prevID != gotKey {
		b.Unlink(name, tk.prevID)
	}
	g.Links[name] = gotKey
	b.Link(name, gotKey, g.ID)
	b.PutFingerprint(name, gotKey, state.Fingerprint{Hash: hash, Payload: tk.payload, Entity: got.Entity, At: got.UpdatedAt, Source: state.FingerprintWrite})
	b.DeleteDeadLetter(DeadLetterKey(r.f.Name, name, g.ID))
	switch {
	case tk.op == "create" && tk.linked:
		b.DeleteIntent(name, g.ID)
		r.count(name, func(c *Counts) { c.Linked++ })
	case tk.op == "create":
		b.DeleteIntent(name, g.ID)
		r.count(name, func(c *Counts) { c.Created++ })
	case tk.op == "update":
		r.count(name, func(c *Counts) { c.Updated++ })
	case tk.op == "convert":
		r.count(name, func(c *Counts) { c.Converted++ })
	}
	r.log.Debug().Str("target", name).Str("op", tk.op).Bool("linked", tk.linked).Str("id", got.ID).Str("canonical", g.ID).Msg("written")
}

// DeadLetterKey is the key of a flow's dead letter for one record (its
// canonical id, or "<source system>:<source id>") and system. The format
// is state's: it stores dead letters under state.DeadLetterKey.
func DeadLetterKey(flow, system, id string) string {
	return state.DeadLetterKey(state.DeadLetter{Flow: flow, System: system, CanonicalID: id})
}

func (r *run) deadLetter(b *state.Batch, system, canonID string, rec connectors.Record, op string, err error, payload map[string]any) {
	r.log.Warn().Str("system", system).Str("op", op).Str("source_id", rec.ID).Err(err).Msg("record dead-lettered")
	if r.plan {
		r.mu.Lock()
		r.res.Plan = append(r.res.Plan, Change{Target: system, Op: "dead-letter", CanonicalID: canonID, Error: err.Error()})
		r.mu.Unlock()
		return
	}
	now := r.e.o.Now().UTC()
	b.PutDeadLetter(state.DeadLetter{Flow: r.f.Name, System: system, CanonicalID: canonID,
		SourceSystem: r.src.Name, SourceEntity: rec.Entity, SourceID: rec.ID, Op: op, Error: err.Error(), Payload: payload, Attempts: 1, FirstAt: now, LastAt: now})
}

// dedupe keeps the last copy of each record, in first-seen order.
func dedupe(recs []connectors.Record, keyOf func(connectors.Record) string) []connectors.Record {
	idx := make(map[string]int, len(recs))
	out := make([]connectors.Record, 0, len(recs))
	for _, rec := range recs {
		k := keyOf(rec)
		if i, ok := idx[k]; ok {
			out[i] = rec
			continue
		}
		idx[k] = len(out)
		out = append(out, rec)
	}
	return out
}
