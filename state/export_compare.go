package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// CompareOptions tune CompareExports.
type CompareOptions struct {
	// Resolution is how precisely times are compared: the coarser of the
	// two engines' (time.Microsecond when either is PostgreSQL, which
	// keeps times to the microsecond). Zero means a nanosecond.
	Resolution time.Duration
	// ExtraOK accepts entries that only the second export holds (a
	// destination that held state before a forced copy); they are counted
	// in CompareResult.Extra instead of being a mismatch.
	ExtraOK bool
}

// CompareResult counts what CompareExports compared.
type CompareResult struct {
	// Compared is the number of entries both exports hold, identical.
	Compared int
	// Extra is the number of entries only the second export holds
	// (CompareOptions.ExtraOK).
	Extra int
}

// MismatchError is CompareExports' answer when the exports differ: the
// first entry, in export order, that differs or that only one holds.
type MismatchError struct {
	// Key names the entry: "record <id>", "link <system>/<id>", ...
	Key string
	// Problem says how it differs.
	Problem string
}

func (e *MismatchError) Error() string { return e.Key + ": " + e.Problem }

// CompareExports exports a and b side by side and compares them entry by
// entry (a cursor, a golden record with the links it names that the index
// lacks, a link, a fingerprint, an intent, a dead letter, a run), streaming.
// Empty and missing maps are the same; times are compared in UTC to
// o.Resolution. It returns a *MismatchError for the first difference.
func CompareExports(ctx context.Context, a, b Exporter, o CompareOptions) (CompareResult, error) {
	if o.Resolution <= 0 {
		o.Resolution = time.Nanosecond
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sa, sb := startEntries(ctx, a, o.Resolution), startEntries(ctx, b, o.Resolution)
	res, err := mergeCompare(sa, sb, o.ExtraOK)
	cancel()
	sa.wait()
	sb.wait()
	return res, err
}

func mergeCompare(a, b *entryStream, extraOK bool) (CompareResult, error) {
	var res CompareResult
	ea, okA := a.next()
	eb, okB := b.next()
	for okA || okB {
		if err := streamErr(a, okA, "source"); err != nil {
			return res, err
		}
		if err := streamErr(b, okB, "destination"); err != nil {
			return res, err
		}
		switch c := compareEntryKeys(ea, eb, okA, okB); {
		case c < 0:
			return res, &MismatchError{Key: ea.name, Problem: "only in the source"}
		case c > 0:
			if !extraOK {
				return res, &MismatchError{Key: eb.name, Problem: "only in the destination"}
			}
			res.Extra++
			eb, okB = b.next()
		default:
			if string(ea.val) != string(eb.val) {
				return res, &MismatchError{Key: ea.name, Problem: fmt.Sprintf("differs: source %s, destination %s", clip(ea.val), clip(eb.val))}
			}
			res.Compared++
			ea, okA = a.next()
			eb, okB = b.next()
		}
	}
	if err := streamErr(a, okA, "source"); err != nil {
		return res, err
	}
	return res, streamErr(b, okB, "destination")
}

// streamErr is the error of a stream that ended (its channel is closed, so
// its err is set).
func streamErr(s *entryStream, ok bool, which string) error {
	if ok || s.err == nil {
		return nil
	}
	return fmt.Errorf("export the %s: %w", which, s.err)
}

// compareEntryKeys orders two stream heads; a finished stream sorts last.
func compareEntryKeys(a, b entry, okA, okB bool) int {
	switch {
	case !okB:
		return -1
	case !okA:
		return 1
	case a.rank != b.rank:
		return a.rank - b.rank
	}
	return strings.Compare(a.key, b.key)
}

func clip(b []byte) string {
	const max = 300
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// entry is one exported item in comparable form.
type entry struct {
	rank int    // the kind, in export order
	key  string // sorts as the engines list the kind
	name string // for messages
	val  []byte // canonical JSON
}

// entryStream runs one export in a goroutine and hands its entries over.
type entryStream struct {
	ch   chan entry
	done chan struct{}
	err  error // set before ch is closed
}

func startEntries(ctx context.Context, x Exporter, res time.Duration) *entryStream {
	s := &entryStream{ch: make(chan entry, 256), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		eb := &entryBuilder{ctx: ctx, out: s.ch, res: res}
		err := x.Export(ctx, eb.add)
		if err == nil {
			err = eb.flush()
		}
		s.err = err
	}()
	return s
}

// next returns the next entry, or false when the export ended (or failed).
func (s *entryStream) next() (entry, bool) {
	e, ok := <-s.ch
	return e, ok
}

// wait drains the stream until its export has returned.
func (s *entryStream) wait() {
	for range s.ch {
	}
	<-s.done
}

// entryBuilder turns exported changes into entries: a record's entry waits
// for the unlinks that follow it (the links it names that the index lacks
// are part of it).
type entryBuilder struct {
	ctx     context.Context
	out     chan<- entry
	res     time.Duration
	record  *recordEntry
	last    entry
	started bool
}

type recordEntry struct {
	ID        string                   `json:"id"`
	Fields    map[string]any           `json:"fields,omitempty"`
	Links     map[string]string        `json:"links,omitempty"`
	Sources   map[string]funnel.Source `json:"sources,omitempty"`
	Gone      map[string]time.Time     `json:"gone,omitempty"`
	Unindexed []string                 `json:"unindexed_links,omitempty"`
}

func (b *entryBuilder) add(o Op) error {
	if o.Kind == OpUnlink && b.record != nil {
		b.record.Unindexed = append(b.record.Unindexed, o.System+"/"+o.ID)
		return nil
	}
	if err := b.flush(); err != nil {
		return err
	}
	if o.Kind == OpPutRecord {
		if o.Record == nil {
			return fmt.Errorf("export: OpPutRecord without a record")
		}
		b.record = b.canonRecord(o.Record)
		return nil
	}
	e, err := b.canon(o)
	if err != nil {
		return err
	}
	return b.send(e)
}

// flush sends the record entry waiting for its unlinks, if any.
func (b *entryBuilder) flush() error {
	r := b.record
	if r == nil {
		return nil
	}
	b.record = nil
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record %s: %w", r.ID, err)
	}
	return b.send(entry{rank: 1, key: r.ID, name: "record " + r.ID, val: v})
}

func (b *entryBuilder) send(e entry) error {
	if b.started && compareEntryKeys(b.last, e, true, true) >= 0 {
		return fmt.Errorf("export is out of order: %s after %s", e.name, b.last.name)
	}
	b.started, b.last = true, entry{rank: e.rank, key: e.key, name: e.name}
	select {
	case b.out <- e:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

func (b *entryBuilder) tm(t time.Time) time.Time { return t.UTC().Truncate(b.res) }

func (b *entryBuilder) canonRecord(r *funnel.Record) *recordEntry {
	e := &recordEntry{ID: r.ID, Fields: emptyNil(r.Fields), Links: emptyNil(r.Links)}
	if len(r.Sources) > 0 {
		e.Sources = make(map[string]funnel.Source, len(r.Sources))
		for f, s := range r.Sources {
			e.Sources[f] = funnel.Source{System: s.System, At: b.tm(s.At)}
		}
	}
	if len(r.Gone) > 0 {
		e.Gone = make(map[string]time.Time, len(r.Gone))
		for sys, at := range r.Gone {
			e.Gone[sys] = b.tm(at)
		}
	}
	return e
}

func emptyNil[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	return m
}

// canon builds the entry of every kind but a record.
func (b *entryBuilder) canon(o Op) (entry, error) {
	if err := checkOpValue(o); err != nil {
		return entry{}, err
	}
	var e entry
	var v any
	switch o.Kind {
	case OpSetCursor:
		e, v = entry{rank: 0, key: o.Key, name: "cursor " + o.Key}, nonNilBytes(o.Cursor)
	case OpLink:
		e, v = entry{rank: 2, key: o.System + "\x00" + o.ID, name: "link " + o.System + "/" + o.ID}, o.Target
	case OpPutFingerprint:
		f := *o.Fingerprint
		f.At, f.Payload = b.tm(f.At), emptyNil(f.Payload)
		e, v = entry{rank: 3, key: o.System + "\x00" + o.ID, name: "fingerprint " + o.System + "/" + o.ID}, f
	case OpPutIntent:
		in := *o.Intent
		in.At, in.Match, in.Payload = b.tm(in.At), emptyNil(in.Match), emptyNil(in.Payload)
		e, v = entry{rank: 4, key: in.System + "\x00" + in.ID, name: "intent " + in.System + "/" + in.ID}, in
	case OpRestoreDeadLetter:
		d := *o.DeadLetter
		d.FirstAt, d.LastAt, d.Payload = b.tm(d.FirstAt), b.tm(d.LastAt), emptyNil(d.Payload)
		e, v = entry{rank: 5, key: d.Key, name: "dead letter " + d.Key}, d
	case OpPutRun:
		e, v = b.canonRun(*o.Run)
	default:
		return entry{}, fmt.Errorf("export: unexpected op kind %d", o.Kind)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return entry{}, fmt.Errorf("%s: %w", e.name, err)
	}
	e.val = raw
	return e, nil
}

func (b *entryBuilder) canonRun(r Run) (entry, any) {
	key := string(runKey(r.Flow, r.Started))
	name := "run " + r.Flow + " started " + r.Started.UTC().Format(time.RFC3339Nano)
	r.Started, r.Finished, r.Counts = b.tm(r.Started), b.tm(r.Finished), emptyNil(r.Counts)
	return entry{rank: 6, key: key, name: name}, r
}
