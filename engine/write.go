package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// execute runs the write tasks and waits for them (see dispatch).
func (r *run) execute(ctx context.Context, tasks []*task) error {
	return r.dispatch(ctx, tasks, nil).wait()
}

// flight is one page's writes on their way: dispatched in order, per
// target at most Flow.WriteConcurrency at once over the whole run (the
// slots are the run's, so the writes of the next page fill those the end
// of this one leaves free).
type flight struct {
	done       chan struct{} // closed when every task has finished
	dispatched chan struct{} // closed when every task holds a slot or was not sent
	fatal      error
}

// wait blocks until every task of the flight has finished and returns the
// error that must stop the run, if any.
func (f *flight) wait() error {
	<-f.done
	return f.fatal
}

// dispatch starts the write tasks in order, after the tasks of after (the
// page before, whose writes are still running) all hold a slot, so pages
// are written first come first served. A failed write never stops the
// others: apply turns it into a delivery entry. Once a target shows itself
// unavailable (see marksDown), its remaining tasks are not sent. The
// flight's error is one that is not a target's answer (state, programming),
// which must stop the run: after it no further task is sent.
func (r *run) dispatch(ctx context.Context, tasks []*task, after *flight) *flight {
	f := &flight{done: make(chan struct{}), dispatched: make(chan struct{})}
	go func() {
		defer close(f.done)
		if after != nil {
			<-after.dispatched
		}
		var wg sync.WaitGroup
		for _, tk := range tasks {
			s := r.slots[tk.t.Name]
			s <- struct{}{}
			r.wmu.Lock()
			down, stop := tk.t.down, r.fatal
			r.wmu.Unlock()
			if stop != nil || down != nil || ctx.Err() != nil {
				<-s
				tk.err = &notSent{target: tk.t.Name, cause: firstErr(down, ctx.Err(), stop)}
				continue
			}
			wg.Add(1)
			go func(tk *task) {
				defer wg.Done()
				defer func() { <-s }()
				tk.err = r.write(ctx, tk)
				r.wrote(tk, f)
			}(tk)
		}
		close(f.dispatched)
		wg.Wait()
	}()
	return f
}

// wrote notes the outcome of a finished write: a target that failed
// downAfter times in a row is down for the rest of the run, a local failure
// stops the run, and a record written is known to own its target record
// until the page commits its link (see linkOwner).
func (r *run) wrote(tk *task, f *flight) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	switch {
	case tk.err == nil:
		tk.t.fails = 0
		if tk.done != nil && !r.plan {
			r.uncommitted[tk.t.Name][tk.t.Key(*tk.done)] = tk.it.golden.ID
		}
	case !isTargetAnswer(tk.err):
		if f.fatal == nil {
			f.fatal = fmt.Errorf("%s %s in %s: %w", tk.op, tk.it.golden.ID, tk.t.Name, tk.err)
		}
		if r.fatal == nil {
			r.fatal = f.fatal
		}
	case marksDown(tk.err):
		tk.t.fails++
		if tk.t.fails >= downAfter && tk.t.down == nil {
			tk.t.down = tk.err
			r.log.Warn().Err(tk.err).Str(logkey.Target, tk.t.Name).Msg("target unavailable: its remaining writes in this run are kept pending")
		}
	}
}

// linkOwner is the canonical id of the record linked to a target record:
// the committed link, or a write of this run whose page has not committed
// yet (the next page's writes run beside it).
func (r *run) linkOwner(target, key string) (string, error) {
	r.wmu.Lock()
	id, ok := r.uncommitted[target][key]
	r.wmu.Unlock()
	if ok {
		return id, nil
	}
	return r.store().Link(target, key)
}

// committed forgets the uncommitted links of tasks whose page committed.
func (r *run) committed(tasks []*task) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	for _, tk := range tasks {
		if tk.done != nil {
			delete(r.uncommitted[tk.t.Name], tk.t.Key(*tk.done))
		}
	}
}

// downAfter is how many writes in a row must fail with an outage-like error
// (each after the HTTP layer's own retries) before a target counts as
// unavailable for the rest of the run.
const downAfter = 3

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// notSent is the error of a write that was not sent because its target was
// found unavailable earlier in the run (or the run is being cancelled).
type notSent struct {
	target string
	cause  error
}

func (e *notSent) Error() string {
	return fmt.Sprintf("not sent: %s was unavailable earlier in this run: %v", e.target, e.cause)
}
func (e *notSent) Unwrap() error { return e.cause }

// errAmbiguous marks a record that matches several records in a target.
type errAmbiguous struct{ msg string }

func (e *errAmbiguous) Error() string { return e.msg }

// errCreateUnresolved is the delivery error of a record whose earlier
// create has an unknown outcome: it waits for the intent's lookup.
var errCreateUnresolved = errors.New("an earlier create's outcome is unknown: it is looked up in the target before anything is sent again")

// isTargetAnswer reports whether err is a target's (or the network's)
// answer to a write, which becomes a delivery entry, rather than a local
// failure (state) that must stop the run.
func isTargetAnswer(err error) bool {
	var amb *errAmbiguous
	var ns *notSent
	return errors.As(err, &amb) || errors.As(err, &ns) || connectors.KindOf(err) != 0 ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// permanent reports whether a write failed because of the record itself
// (the target refused it, it matches several records, it vanished): retrying
// unchanged cannot help, so the entry is dead, not pending.
func permanent(err error) bool {
	var amb *errAmbiguous
	if errors.As(err, &amb) {
		return true
	}
	var ns *notSent
	if errors.As(err, &ns) {
		return false
	}
	switch connectors.KindOf(err) {
	case connectors.Rejected, connectors.NotFound, connectors.Forbidden:
		return true
	}
	return false
}

// marksDown reports whether a failed write shows its whole target
// unavailable for the rest of the run: credentials refused, or a transient
// failure that survived the HTTP layer's retries. A single lost answer
// (outcome unknown) does not.
func marksDown(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch connectors.KindOf(err) {
	case connectors.Auth, connectors.Retryable:
		return true
	}
	return false
}

// isFatal reports whether an error met outside the write phase (source
// reads, reconciliation) must stop the run.
func isFatal(err error) bool {
	if permanent(err) {
		return false
	}
	return !connectors.IsOutcomeUnknown(err)
}

// write performs one task. In plan mode the same decisions are taken and
// the same reads done (lookups, conflict checks), but every mutating call
// is replaced by a recorded Change.
func (r *run) write(ctx context.Context, tk *task) error {
	conn := tk.t.Conn
	switch tk.op {
	case OpCreate:
		want, entity := tk.it.golden, tk.out.Entity
		if tk.want != nil {
			want = tk.want
		}
		found, err := r.findExisting(ctx, tk, want, entity, false)
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
		tk.done, tk.payload = &got, tk.out.Fields
	case OpUpdate, OpConvert:
		if tk.t.t.CheckBeforeWrite {
			if err := r.checkTarget(ctx, tk); err != nil {
				return err
			}
			if tk.op == OpUpdate && len(tk.diff) == 0 {
				tk.done, tk.payload = nil, tk.prev.Payload
				return nil
			}
		}
		entity, id := tk.prev.Entity, tk.t.RawID(tk.prevID)
		var got connectors.Record
		if tk.op == OpConvert {
			c, err := r.convert(ctx, tk)
			switch {
			case connectors.IsUnsupported(err):
				// The target cannot convert: the record stays where it
				// is (its other changes are still written there) and
				// the run reports the capability once, not a dead letter.
				r.unsupported(tk.t.Name, err)
				tk.op = OpUpdate
				if len(tk.diff) == 0 {
					tk.done, tk.payload = nil, tk.prev.Payload
					return nil
				}
			case err != nil:
				return err
			default:
				got, entity, id = c, c.Entity, c.ID
			}
		}
		if len(tk.diff) > 0 {
			u, err := r.mutate(ctx, tk, OpUpdate, func() (connectors.Record, error) { return conn.Update(ctx, entity, id, tk.diff) })
			if err != nil {
				return err
			}
			got = u
		}
		tk.done, tk.payload = &got, MergePayload(tk.prev.Payload, tk.diff)
	}
	return nil
}

// convert moves a linked record to the entity its stage calls for. When the
// record is no longer where crmsync left it, an earlier conversion whose
// answer was lost may have moved it already: it is looked up in the new
// entity (a fresh lookup, not the run's index) before the conversion counts
// as failed.
func (r *run) convert(ctx context.Context, tk *task) (connectors.Record, error) {
	c, err := r.mutate(ctx, tk, OpConvert, func() (connectors.Record, error) {
		return tk.t.Conn.ConvertStage(ctx, tk.prev.Entity, tk.t.RawID(tk.prevID), tk.out.Entity)
	})
	if err == nil || !connectors.IsNotFound(err) {
		return c, err
	}
	want := r.lastView(tk.t.System, tk.prev)
	if want == nil {
		want = tk.it.golden
	}
	found, ferr := r.findExisting(ctx, tk, want, tk.out.Entity, true)
	if ferr != nil || found == nil || found.Entity != tk.out.Entity {
		return c, err
	}
	r.log.Info().Str(logkey.Target, tk.t.Name).Str(logkey.TargetID, found.ID).Msg("stage conversion had happened: linked to the converted record")
	return *found, nil
}

// unsupported counts one record whose write needs a capability the target
// lacks (connectors.Unsupported); the first one is logged, the run's result
// lists each capability once with its count.
func (r *run) unsupported(target string, err error) {
	msg := err.Error()
	var ce *connectors.Error
	if errors.As(err, &ce) && ce.Message != "" {
		msg = ce.Op + ": " + ce.Message
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.res.Unsupported {
		u := &r.res.Unsupported[i]
		if u.Target == target && u.Message == msg {
			u.Records++
			return
		}
	}
	r.res.Unsupported = append(r.res.Unsupported, Unsupported{Target: target, Message: msg, Records: 1})
	r.log.Warn().Str(logkey.Target, target).Str("capability", msg).Msg("the target lacks a capability: the records that need it stay as they are (counted in the run's result)")
}

// create sends (or, in a plan, records) a create.
func (r *run) create(ctx context.Context, tk *task) (connectors.Record, error) {
	return r.mutate(ctx, tk, OpCreate, func() (connectors.Record, error) {
		return tk.t.Conn.Create(ctx, connectors.Record{Entity: tk.out.Entity, Fields: tk.out.Fields})
	})
}

// mutate runs a write, or records it as a planned change.
func (r *run) mutate(ctx context.Context, tk *task, op Op, do func() (connectors.Record, error)) (connectors.Record, error) {
	if !r.plan {
		if err := r.mayWrite(); err != nil {
			return connectors.Record{}, err
		}
		return do()
	}
	g := tk.it.golden
	ch := Change{Target: tk.t.Name, Op: op, CanonicalID: g.ID, TargetID: tk.prevID, Entity: tk.out.Entity, Name: g.Str(funnel.FieldName)}
	var old map[string]any
	if tk.prev != nil {
		old = tk.prev.Payload
		ch.Entity = tk.prev.Entity
		if op == OpConvert {
			ch.ToEntity = tk.out.Entity
		}
	}
	switch op {
	case OpCreate:
		ch.Fields = FieldDiffs(nil, tk.out.Fields)
	case OpUpdate:
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
	tk.diff = KeepUncarried(DiffPayload(base, out.Fields), tk.t.Map, r.src.Map)
	tk.prev = &state.Fingerprint{Entity: cur.Entity, Payload: base, Hash: view.Fingerprint(), At: cur.UpdatedAt}
	tk.noEcho = changed
	r.log.Debug().Str(logkey.Target, tk.t.Name).Str(logkey.TargetID, tk.prevID).Bool("merged", changed).Msg("target changed since last sync: merged before writing")
	return nil
}
