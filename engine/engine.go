package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
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
	res.Finished = e.o.Now().UTC()
	if err != nil {
		res.Error = err.Error()
	}
	if ro.Mode != ModePlan {
		b := &state.Batch{}
		run := state.Run{Flow: f.Name, Started: res.Started, Finished: res.Finished, Counts: map[string]map[string]int{}, Error: res.Error, Mode: string(ro.Mode)}
		for sys, c := range res.Systems {
			run.Counts[sys] = c.asMap()
		}
		b.PutRun(run)
		if cerr := e.o.Store.Commit(b); cerr != nil && err == nil {
			err = fmt.Errorf("record run: %w", cerr)
		}
	}
	if e.o.Metrics != nil {
		for sys, c := range res.Systems {
			for k, n := range c.asMap() {
				if n > 0 {
					e.o.Metrics.Records(f.Name, sys, k, n)
				}
			}
		}
		e.o.Metrics.RunDone(f.Name, ro.Mode, res.Finished.Sub(res.Started), err)
	}
	return res, err
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
	// pending holds canonical ids with an unresolved create intent, per target.
	pending map[string]map[string]bool
	// planned holds golden records changed in memory during a plan.
	planned map[string]*funnel.Record
	mu      sync.Mutex // guards res counters and plan during concurrent writes
}

type targetSys struct {
	*System
	t Target
}

func (e *Engine) newRun(f Flow, ro RunOptions, res *Result) (*run, error) {
	src, ok := e.o.Systems[f.Source]
	if !ok {
		return nil, fmt.Errorf("flow %s: unknown source system %q", f.Name, f.Source)
	}
	r := &run{e: e, f: f, ro: ro, res: res, src: src, plan: ro.Mode == ModePlan,
		log:     e.o.Logger.With().Str("flow", f.Name).Str("mode", string(ro.Mode)).Logger(),
		pending: map[string]map[string]bool{}, planned: map[string]*funnel.Record{}}
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
		r.f.MatchKeys = []string{funnel.FieldEmail, funnel.FieldName}
	}
	return r, nil
}

func (r *run) store() *state.Store { return r.e.o.Store }

func (r *run) do(ctx context.Context) error {
	if !r.plan {
		if err := r.recoverIntents(ctx); err != nil {
			return err
		}
	} else {
		for _, t := range r.targets {
			ins, err := r.store().Intents(t.Name)
			if err != nil {
				return err
			}
			for _, in := range ins {
				r.pending[t.Name][in.ID] = true
			}
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
	pulled := 0
	for {
		if r.stopRequested() {
			r.res.Stopped = true
			r.log.Info().Msg("stop requested: ending run after the last committed page")
			return nil
		}
		page, err := r.src.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: r.src.PageSize, Since: r.ro.Since})
		if err != nil {
			return fmt.Errorf("pull from %s: %w", r.src.Name, err)
		}
		b := &state.Batch{}
		perr := r.handlePage(ctx, page, b)
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
			return nil
		}
	}
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

// item is one source record being handled.
type item struct {
	native connectors.Record
	golden *funnel.Record
	fp     state.Fingerprint
	failed bool
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
	err     error
	payload map[string]any
}

func (r *run) count(system string, f func(c *Counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.res.counts(system))
}

func (r *run) handlePage(ctx context.Context, page connectors.Page, b *state.Batch) error {
	var items []*item
	var tasks []*task
	for _, rec := range dedupe(page.Records) {
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
	if r.plan {
		for _, tk := range tasks {
			r.planTask(tk)
		}
		for _, it := range items {
			r.planned[it.golden.ID] = it.golden
		}
		return nil
	}
	// Write-ahead: golden records and source links first, then create intents,
	// so a crash mid-page can be resolved without creating anything twice.
	var intents []state.Intent
	pre := &state.Batch{}
	for _, tk := range tasks {
		if tk.op == "create" {
			pre.PutRecord(tk.it.golden)
			intents = append(intents, state.Intent{ID: tk.it.golden.ID, System: tk.t.Name, Entity: tk.out.Entity,
				Match: r.matchFor(tk.t, tk.it.golden, tk.out), Payload: tk.out.Fields, Flow: r.f.Name, At: r.e.o.Now().UTC()})
		}
	}
	if len(intents) > 0 {
		if err := r.store().Commit(pre); err != nil {
			return fmt.Errorf("commit golden records before creates: %w", err)
		}
		if err := r.store().PutIntents(intents); err != nil {
			return fmt.Errorf("write create intents: %w", err)
		}
	}
	fatal := r.execute(ctx, tasks)
	for _, tk := range tasks {
		r.apply(tk, b)
	}
	for _, it := range items {
		if !it.failed {
			b.PutFingerprint(r.src.Name, it.native.ID, it.fp)
		}
		b.PutRecord(it.golden)
	}
	return fatal
}

// prepare maps one source record and decides the writes it needs.
func (r *run) prepare(rec connectors.Record, b *state.Batch) (*item, []*task, error) {
	view, err := r.src.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
	if err != nil {
		r.count(r.src.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, r.src.Name, "", rec, "map-inbound", err, rec.Fields)
		return nil, nil, nil
	}
	fp := state.Fingerprint{Hash: view.Fingerprint(), Entity: rec.Entity, At: rec.UpdatedAt, Source: "read"}
	if out, err := r.src.Map.Outbound(view); err == nil {
		fp.Payload = out.Fields
	}
	canonID, err := r.store().Link(r.src.Name, rec.ID)
	if err != nil {
		return nil, nil, err
	}
	var golden *funnel.Record
	if canonID != "" {
		if g, ok := r.planned[canonID]; ok {
			golden = g
		} else if golden, err = r.store().Record(canonID); err != nil {
			return nil, nil, err
		}
	}
	prev, err := r.store().Fingerprint(r.src.Name, rec.ID)
	if err != nil {
		return nil, nil, err
	}
	if golden != nil && prev != nil && prev.Hash == fp.Hash && r.settled(golden) {
		for _, t := range r.targets {
			if t.t.Accepts(golden) {
				r.count(t.Name, func(c *Counts) { c.Unchanged++ })
			} else {
				r.count(t.Name, func(c *Counts) { c.Skipped++ })
			}
		}
		return nil, nil, nil
	}
	if golden == nil {
		golden = funnel.New(r.e.o.NewID())
	} else {
		golden = golden.Clone()
	}
	r.merge(golden, view, rec)
	golden.Links[r.src.Name] = rec.ID
	it := &item{native: rec, golden: golden, fp: fp}
	var tasks []*task
	for _, t := range r.targets {
		if !t.t.Accepts(golden) {
			r.count(t.Name, func(c *Counts) { c.Skipped++ })
			continue
		}
		out, err := t.Map.Outbound(golden)
		if err != nil {
			it.failed = true
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			r.deadLetter(b, t.Name, golden.ID, rec, "map-outbound", err, nil)
			continue
		}
		tid := golden.Links[t.Name]
		if tid == "" {
			if r.pending[t.Name][golden.ID] {
				// An earlier create's outcome is still unknown: never send a second one.
				it.failed = true
				r.count(t.Name, func(c *Counts) { c.Failed++ })
				continue
			}
			tasks = append(tasks, &task{it: it, t: t, op: "create", out: out})
			continue
		}
		prevT, err := r.store().Fingerprint(t.Name, tid)
		if err != nil {
			return nil, nil, err
		}
		var old map[string]any
		oldEntity := ""
		if prevT != nil {
			old, oldEntity = prevT.Payload, prevT.Entity
		}
		diff := DiffPayload(old, out.Fields)
		op := "update"
		if oldEntity != "" && out.Entity != "" && oldEntity != out.Entity {
			op = "convert"
		} else if len(diff) == 0 {
			r.count(t.Name, func(c *Counts) { c.Unchanged++ })
			continue
		}
		tasks = append(tasks, &task{it: it, t: t, op: op, out: out, prevID: tid, prev: prevT, diff: diff})
	}
	return it, tasks, nil
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

// merge folds a source's view of a record into its golden record. Fields
// the source mapping carries take the source's value (including removal);
// the stage only moves forward unless the flow allows a step back.
func (r *run) merge(g, view *funnel.Record, rec connectors.Record) {
	at := rec.UpdatedAt
	for _, name := range funnel.FieldNames() {
		if !r.src.Map.Carries(name) {
			continue
		}
		nv, has := view.Fields[name]
		if name == funnel.FieldStage && has && !r.f.AllowStageBack {
			if cur := g.Stage(); cur.Valid() && funnel.Stage(fmt.Sprint(nv)).Before(cur) {
				continue
			}
		}
		if has {
			g.Fields[name] = nv
		} else {
			delete(g.Fields, name)
		}
		if g.Sources == nil {
			g.Sources = map[string]funnel.Source{}
		}
		g.Sources[name] = funnel.Source{System: r.src.Name, At: at}
	}
	g.Complete()
}

func (r *run) matchFor(t *targetSys, g *funnel.Record, out mapping.Native) map[string]string {
	m := map[string]string{}
	for _, key := range r.f.MatchKeys {
		path, ok := t.Map.NativePath(key, g.Kind())
		if !ok {
			continue
		}
		if v, ok := GetPath(out.Fields, path); ok {
			if s := strings.TrimSpace(fmt.Sprint(v)); s != "" {
				m[path] = s
			}
		}
	}
	return m
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
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
			tk.err = r.write(wctx, tk)
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

func isFatal(err error) bool {
	switch connectors.KindOf(err) {
	case connectors.Rejected, connectors.NotFound, connectors.OutcomeUnknown:
		return false
	}
	return true
}

func (r *run) write(ctx context.Context, tk *task) error {
	conn := tk.t.Conn
	switch tk.op {
	case "create":
		got, err := conn.Create(ctx, connectors.Record{Entity: tk.out.Entity, Fields: tk.out.Fields})
		if err != nil {
			return err
		}
		tk.done, tk.payload = &got, tk.out.Fields
	case "update":
		got, err := conn.Update(ctx, tk.prev.Entity, tk.prevID, tk.diff)
		if err != nil {
			return err
		}
		tk.done, tk.payload = &got, MergePayload(tk.prev.Payload, tk.diff)
	case "convert":
		got, err := conn.ConvertStage(ctx, tk.prev.Entity, tk.prevID, tk.out.Entity)
		if err != nil {
			return err
		}
		if len(tk.diff) > 0 {
			if got, err = conn.Update(ctx, got.Entity, got.ID, tk.diff); err != nil {
				return err
			}
		}
		tk.done, tk.payload = &got, MergePayload(tk.prev.Payload, tk.diff)
	}
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
			r.pending[name][g.ID] = true
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
	got := tk.done
	view, err := tk.t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: got.Fields})
	hash := ""
	if err == nil {
		hash = view.Fingerprint()
	}
	if tk.prevID != "" && tk.prevID != got.ID {
		b.Unlink(name, tk.prevID)
	}
	g.Links[name] = got.ID
	b.Link(name, got.ID, g.ID)
	b.PutFingerprint(name, got.ID, state.Fingerprint{Hash: hash, Payload: tk.payload, Entity: got.Entity, At: got.UpdatedAt, Source: "write"})
	b.DeleteDeadLetter(DeadLetterKey(r.f.Name, name, g.ID))
	switch tk.op {
	case "create":
		b.DeleteIntent(name, g.ID)
		r.count(name, func(c *Counts) { c.Created++ })
	case "update":
		r.count(name, func(c *Counts) { c.Updated++ })
	case "convert":
		r.count(name, func(c *Counts) { c.Converted++ })
	}
	r.log.Debug().Str("target", name).Str("op", tk.op).Str("id", got.ID).Str("canonical", g.ID).Msg("written")
}

// DeadLetterKey is the key of a flow's dead letter for one record and system.
func DeadLetterKey(flow, system, id string) string { return flow + "/" + system + "/" + id }

func (r *run) deadLetter(b *state.Batch, system, canonID string, rec connectors.Record, op string, err error, payload map[string]any) {
	id := canonID
	if id == "" {
		id = r.src.Name + ":" + rec.ID
	}
	r.log.Warn().Str("system", system).Str("op", op).Str("source_id", rec.ID).Err(err).Msg("record dead-lettered")
	if r.plan {
		r.res.Plan = append(r.res.Plan, Change{Target: system, Op: "dead-letter", CanonicalID: canonID, Error: err.Error()})
		return
	}
	now := r.e.o.Now().UTC()
	b.PutDeadLetter(state.DeadLetter{Key: DeadLetterKey(r.f.Name, system, id), Flow: r.f.Name, System: system, CanonicalID: canonID,
		SourceSystem: r.src.Name, SourceID: rec.ID, Op: op, Error: err.Error(), Payload: payload, Attempts: 1, FirstAt: now, LastAt: now})
}

func (r *run) planTask(tk *task) {
	ch := Change{Target: tk.t.Name, Op: tk.op, CanonicalID: tk.it.golden.ID, TargetID: tk.prevID, Entity: tk.out.Entity, Name: tk.it.golden.Str(funnel.FieldName)}
	var old map[string]any
	if tk.prev != nil {
		old = tk.prev.Payload
		ch.Entity = tk.prev.Entity
		if tk.op == "convert" {
			ch.ToEntity = tk.out.Entity
		}
	}
	diff := tk.diff
	if tk.op == "create" {
		diff = tk.out.Fields
	}
	ch.Fields = FieldDiffs(old, diff)
	r.mu.Lock()
	r.res.Plan = append(r.res.Plan, ch)
	r.mu.Unlock()
	switch tk.op {
	case "create":
		r.count(tk.t.Name, func(c *Counts) { c.Created++ })
	case "update":
		r.count(tk.t.Name, func(c *Counts) { c.Updated++ })
	case "convert":
		r.count(tk.t.Name, func(c *Counts) { c.Converted++ })
	}
}

// recoverIntents resolves create intents left by an interrupted run: the
// record is looked up in the target; if found it is linked, if not it is
// created now (the lookup proved it absent), if several match it is
// dead-lettered. Nothing is ever created without that lookup.
func (r *run) recoverIntents(ctx context.Context) error {
	for _, t := range r.targets {
		ins, err := r.store().Intents(t.Name)
		if err != nil {
			return fmt.Errorf("read intents: %w", err)
		}
		for _, in := range ins {
			if err := r.recoverIntent(ctx, t, in); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) recoverIntent(ctx context.Context, t *targetSys, in state.Intent) error {
	b := &state.Batch{}
	g, err := r.store().Record(in.ID)
	if err != nil {
		return err
	}
	log := r.log.With().Str("target", t.Name).Str("canonical", in.ID).Logger()
	if g == nil || g.Links[t.Name] != "" {
		b.DeleteIntent(t.Name, in.ID)
		return r.store().Commit(b)
	}
	if len(in.Match) == 0 {
		b.DeleteIntent(t.Name, in.ID)
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, in.ID, connectors.Record{ID: g.Links[r.src.Name]}, "create",
			errors.New("an earlier create may or may not have happened and the record has no match keys to look it up; check the target, then replay or drop this dead letter"), in.Payload)
		return r.store().Commit(b)
	}
	var match []connectors.Match
	for k, v := range in.Match {
		match = append(match, connectors.Match{Field: k, Value: v})
	}
	sort.Slice(match, func(i, j int) bool { return match[i].Field < match[j].Field })
	found, err := t.Conn.Find(ctx, in.Entity, match)
	if err != nil {
		return fmt.Errorf("resolve create intent in %s: %w", t.Name, err)
	}
	var got connectors.Record
	switch len(found) {
	case 0:
		log.Info().Msg("interrupted create did not happen: creating now")
		got, err = t.Conn.Create(ctx, connectors.Record{Entity: in.Entity, Fields: in.Payload})
		if err != nil {
			if isFatal(err) || connectors.IsOutcomeUnknown(err) {
				return fmt.Errorf("resolve create intent in %s: %w", t.Name, err)
			}
			b.DeleteIntent(t.Name, in.ID)
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			r.deadLetter(b, t.Name, in.ID, connectors.Record{ID: g.Links[r.src.Name]}, "create", err, in.Payload)
			return r.store().Commit(b)
		}
		r.count(t.Name, func(c *Counts) { c.Created++ })
	case 1:
		log.Info().Str("id", found[0].ID).Msg("interrupted create had happened: linked to the existing record")
		got = found[0]
	default:
		ids := make([]string, len(found))
		for i, f := range found {
			ids[i] = f.ID
		}
		b.DeleteIntent(t.Name, in.ID)
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, in.ID, connectors.Record{ID: g.Links[r.src.Name]}, "create",
			fmt.Errorf("interrupted create: %d records match %v (%s); link one by hand", len(found), in.Match, strings.Join(ids, ", ")), in.Payload)
		return r.store().Commit(b)
	}
	hash := ""
	if view, err := t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: got.Fields}); err == nil {
		hash = view.Fingerprint()
	}
	g.Links[t.Name] = got.ID
	b.PutRecord(g)
	b.PutFingerprint(t.Name, got.ID, state.Fingerprint{Hash: hash, Payload: in.Payload, Entity: got.Entity, At: got.UpdatedAt, Source: "write"})
	b.DeleteIntent(t.Name, in.ID)
	return r.store().Commit(b)
}

// dedupe keeps the last copy of each id, in first-seen order.
func dedupe(recs []connectors.Record) []connectors.Record {
	idx := make(map[string]int, len(recs))
	out := make([]connectors.Record, 0, len(recs))
	for _, rec := range recs {
		k := rec.Entity + "\x00" + rec.ID
		if i, ok := idx[k]; ok {
			out[i] = rec
			continue
		}
		idx[k] = len(out)
		out = append(out, rec)
	}
	return out
}
