package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
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
	// PendingWrites reports how many writes to a target a flow still owes
	// after a run (pending deliveries, retried by every run).
	PendingWrites(flow, target string, n int)
}

// Options builds an Engine.
type Options struct {
	Systems map[string]*System
	Store   state.Storage
	Logger  zerolog.Logger
	Metrics Metrics
	// Now and NewID are injectable for tests; defaults time.Now and
	// newID (UUIDv7).
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
		o.NewID = newID
	}
	return &Engine{o: o}, nil
}

// newID returns a new canonical id: a UUIDv7, whose leading timestamp
// makes the golden records of a run land next to each other in state (a
// page commit rewrites a few B+tree pages, not one per record as random
// UUIDv4s did). Ids stay opaque: ids of either version are valid.
func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// RunOptions tunes one run.
type RunOptions struct {
	Mode Mode
	// Since starts a backfill at this time (zero: from the beginning).
	Since time.Time
	// Stop, when closed, ends the run after the page in hand is committed.
	Stop <-chan struct{}
	// Progress is called after every handled page, and while a target is
	// read before its first creates; never by two goroutines at once.
	Progress func(Progress)
	// Store, when non-nil, is what the run reads and commits through in
	// place of the engine's store: a replica passes a view fenced by its
	// lease on the flow (pgstate.Store.Fenced), so a run that lost its
	// lease commits nothing.
	Store state.Storage
	// Guard, when non-nil, is asked before every write to a target; an
	// error stops that write before anything is sent, and the run (a
	// replica whose lease ran out, e.g. after a pause, sends nothing).
	Guard func() error
}

// CursorKey is the state key of a flow's scheduled cursor.
func CursorKey(flow, source string) string { return "flow/" + flow + "/" + source }

// BackfillKey is the state key of a flow's backfill cursor.
func BackfillKey(flow string) string { return "backfill/" + flow }

// progress reports p to RunOptions.Progress, one call at a time.
func (r *run) progress(p Progress) {
	if r.ro.Progress == nil {
		return
	}
	r.progressMu.Lock()
	defer r.progressMu.Unlock()
	r.ro.Progress(p)
}

// backfillDoneKey holds how many records an interrupted backfill handled,
// committed with its cursor.
func backfillDoneKey(flow string) string { return "backfill-done/" + flow }

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
		err = r.do(connectors.WithWriteGuard(ctx, ro.Guard))
	}
	e.finish(res, f, ro, err)
	return res, err
}

// storeFor is the store a run with ro reads and commits through.
func (e *Engine) storeFor(ro RunOptions) state.Storage {
	if ro.Store != nil {
		return ro.Store
	}
	return e.o.Store
}

func (e *Engine) finish(res *Result, f Flow, ro RunOptions, err error) {
	mode, st := ro.Mode, e.storeFor(ro)
	res.Finished = e.o.Now().UTC()
	if err != nil {
		res.Error = err.Error()
	}
	targets := make([]string, 0, len(f.Targets))
	for _, t := range f.Targets {
		targets = append(targets, t.System)
	}
	if u, uerr := Undelivered(st, f.Name); uerr == nil {
		res.Undelivered = u
	} else if res.Error == "" {
		res.Error = fmt.Sprintf("read pending writes: %v", uerr)
	}
	if mode != ModePlan {
		b := &state.Batch{}
		run := state.Run{Flow: res.Flow, Started: res.Started, Finished: res.Finished, Counts: map[string]map[string]int{}, Error: res.Error, Mode: string(mode)}
		for sys, c := range res.Systems {
			run.Counts[sys] = c.asMap()
		}
		b.PutRun(run)
		if cerr := st.Commit(b); cerr != nil && res.Error == "" {
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
		e.o.Metrics.DeadLetters(res.Flow, res.Dead())
		for _, t := range targets {
			e.o.Metrics.PendingWrites(res.Flow, t, res.PendingFor(t))
		}
	}
}

type run struct {
	// progressMu makes RunOptions.Progress calls one at a time: the
	// target reads before creates report from the write workers.
	progressMu sync.Mutex
	e          *Engine
	f          Flow
	ro         RunOptions
	res        *Result
	src        *System
	targets    []*targetSys
	log        zerolog.Logger
	plan       bool
	// bulk is true for a first sync (no cursor yet) or a backfill.
	bulk bool
	// failedRun holds source records (key → content hash) that failed in
	// this run, so a re-read of the same content is not tried again.
	failedRun map[string]string
	// pending holds canonical ids with an unresolved create intent, per
	// target: no second create is sent for them in this run.
	pending map[string]map[string]bool
	// unknown counts creates of this run whose outcome is unknown; they are
	// resolved (looked up, then created if absent) at the end of the run.
	unknown int
	// planned holds golden records changed in memory by a plan (which
	// commits nothing), so later pages see earlier ones; plannedKeys the
	// source records (key → content hash) a plan has handled, so one read
	// twice in a pass (a TribeCRM record in its funnel set and again in the
	// relation step) is planned once, as a sync, which commits its link,
	// handles it once.
	planned     map[string]*funnel.Record
	plannedKeys map[string]string
	mu          sync.Mutex // guards res, plan output and pending during concurrent writes

	// slots bound the writes in flight per target over the whole run.
	slots map[string]chan struct{}
	// wmu guards what finished writes note: each target's down and fails,
	// fatal and uncommitted.
	wmu sync.Mutex
	// fatal is the first local failure of a write (state, programming):
	// no write is sent after it.
	fatal error
	// uncommitted holds, per target, the target records this run wrote
	// whose page has not committed its links yet → their canonical ids.
	uncommitted map[string]map[string]string
}

type targetSys struct {
	*System
	t       Target
	index   *matchIndex // built lazily for bulk creates
	keys    []string    // match keys the index holds
	creates int         // creates planned for this target in the current page
	imu     sync.Mutex
	// down is the error that showed the target unavailable in this run
	// (downAfter writes in a row failed with an outage, 5xx after retries,
	// 401/403): later writes to it are not sent but kept pending, so one
	// dead target neither stalls the run nor holds back the others.
	down  error
	fails int // outage-like failures in a row
}

func (e *Engine) newRun(f Flow, ro RunOptions, res *Result) (*run, error) {
	src, ok := e.o.Systems[f.Source]
	if !ok {
		return nil, fmt.Errorf("flow %s: unknown source system %q", f.Name, f.Source)
	}
	r := &run{e: e, f: f, ro: ro, res: res, src: src, plan: ro.Mode == ModePlan,
		log:     e.o.Logger.With().Str(logkey.Flow, f.Name).Str(logkey.Mode, string(ro.Mode)).Logger(),
		pending: map[string]map[string]bool{}, planned: map[string]*funnel.Record{}, plannedKeys: map[string]string{}, failedRun: map[string]string{},
		slots: map[string]chan struct{}{}, uncommitted: map[string]map[string]string{}}
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
		r.f.WriteConcurrency = DefaultWriteConcurrency
	}
	for _, t := range r.targets {
		r.slots[t.Name] = make(chan struct{}, r.f.WriteConcurrency)
		r.uncommitted[t.Name] = map[string]string{}
	}
	if len(r.f.MatchKeys) == 0 {
		r.f.MatchKeys = DefaultMatchKeys()
	}
	if r.f.MaxRetries == 0 {
		r.f.MaxRetries = DefaultMaxRetries
	}
	return r, nil
}

// DefaultMatchKeys are the canonical fields tried, in order, to find an
// existing record before creating one.
func DefaultMatchKeys() []string {
	return []string{funnel.FieldEmail, funnel.FieldRegistrationNumber, funnel.FieldVATNumber, funnel.FieldName}
}

func (r *run) store() state.Storage { return r.e.storeFor(r.ro) }

// mayWrite asks RunOptions.Guard whether the run may still write to a
// target; plans always may (they send nothing).
func (r *run) mayWrite() error {
	if r.plan || r.ro.Guard == nil {
		return nil
	}
	if err := r.ro.Guard(); err != nil {
		return fmt.Errorf("flow %s: write not sent: %w", r.f.Name, err)
	}
	return nil
}

func (r *run) do(ctx context.Context) error {
	if err := r.recoverIntents(ctx); err != nil {
		return err
	}
	if r.ro.Mode == ModeSync || r.plan {
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
	// A resumed backfill counts on from the records its earlier part
	// handled (kept with its cursor), so progress says "1,639 of 5,000",
	// not "0 of 3,361".
	before := 0
	if r.ro.Mode == ModeBackfill && cur != nil {
		if b, err := r.store().Cursor(backfillDoneKey(r.f.Name)); err == nil {
			before, _ = strconv.Atoi(string(b))
		}
	}
	if err := r.pages(ctx, key, cur, before); err != nil {
		return err
	}
	if r.unknown > 0 {
		// Creates whose answer was lost: look them up now, while the run
		// still holds the target's attention, and create what is absent.
		if err := r.recoverIntents(ctx); err != nil {
			return err
		}
	}
	if err := r.downError(); err != nil {
		return err
	}
	if r.ro.Mode == ModeSync && r.f.Deletes.Mode != "" && r.f.Deletes.Mode != DeleteIgnore {
		return r.reconcileIfDue(ctx)
	}
	return nil
}

// downError reports the targets found unavailable during the run: the run
// went on (its writes are pending, the cursor moved), but it failed.
func (r *run) downError() error {
	var msgs []string
	for _, t := range r.targets {
		if t.down != nil {
			msgs = append(msgs, fmt.Sprintf("%s unavailable, its writes are pending and retried by the next run: %v", t.Name, t.down))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
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

// RestartBackfill forgets where an interrupted backfill of flow stopped, so
// the next backfill starts from the beginning.
func (e *Engine) RestartBackfill(flow string) error {
	b := &state.Batch{}
	b.SetCursor(BackfillKey(flow), nil)
	b.SetCursor(backfillDoneKey(flow), nil)
	return e.o.Store.Commit(b)
}

// BackfillInterrupted reports whether a backfill of flow stopped before its
// end (the next one resumes from its last committed page).
func (e *Engine) BackfillInterrupted(flow string) (bool, error) {
	c, err := e.o.Store.Cursor(BackfillKey(flow))
	return c != nil, err
}
