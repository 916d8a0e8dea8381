package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/state"
)

// A run's pages overlap: while the writes of one page are in flight, the
// next pages are pulled (read ahead), prepared and their create intents
// committed, and their writes queue for the slots the first page frees; a
// committer settles and commits the pages in order as their writes end.
// So the targets always have writes in flight, and the engine's own work
// (reads of state, mapping, commits) happens beside them, on two
// goroutines, instead of between pages.
//
// What keeps this equivalent to one page after the other:
//   - a page is prepared only when none of its records is in a page not
//     yet committed (same source key); otherwise those pages are committed
//     first;
//   - pages commit in order, each with its own cursor, so a cursor never
//     moves past a page that is not committed; after a page fails, the
//     pages behind it commit what their writes did, without a cursor;
//   - a create is sent only after its intent is durable (writeAhead), as
//     before; a crash with several pages in flight leaves intents for all
//     of them, resolved by the next run like one page's;
//   - a target record written by a page not yet committed counts as linked
//     to its record for the matches of later pages (linkOwner);
//   - a plan runs its pages one after the other (its later pages read what
//     earlier ones planned, which is never committed).
//
// pipelineDepth bounds the pages prepared and not yet committed.
const pipelineDepth = 3

// pageWork is one page on its way through a run.
type pageWork struct {
	page  connectors.Page
	b     *state.Batch
	items []*item
	tasks []*task
	keys  map[string]bool
	fl    *flight
	// committed is closed once the page is committed (or given up).
	committed chan struct{}
}

// pulled is one page read ahead, or the error that ended the reading.
type pulled struct {
	page connectors.Page
	err  error
}

// readAhead pulls the source's pages from cur on, one page ahead of the
// run, until the last page, an error, or cancel.
func (r *run) readAhead(ctx context.Context, cur connectors.Cursor) (<-chan pulled, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan pulled, 1)
	opts := connectors.PullOptions{PageSize: r.src.PageSize, Since: r.ro.Since, WantTotal: r.ro.Progress != nil}
	go func() {
		defer close(ch)
		for {
			page, err := r.src.Conn.Pull(ctx, cur, opts)
			select {
			case ch <- pulled{page, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || page.Done {
				return
			}
			cur = page.Next
		}
	}()
	return ch, cancel
}

// pages runs the page loop of a run from cursor cur, committing each page
// with its cursor under key; before is how many records an interrupted
// backfill handled already (for progress).
func (r *run) pages(ctx context.Context, key string, cur connectors.Cursor, before int) error {
	if r.stopRequested() {
		r.res.Stopped = true
		return nil
	}
	ahead, cancel := r.readAhead(ctx, cur)
	defer func() {
		cancel()
		for range ahead { // let the reader end before the run's state is gone
		}
	}()
	c := r.newCommitter(key, before)
	var open []*pageWork // sent to the committer, maybe not committed yet
	for {
		if err := c.failed(); err != nil {
			return c.close()
		}
		got, ok := <-ahead
		if !ok { // the reader ends early only when ctx is done
			return firstErr(c.close(), ctx.Err())
		}
		// A stop is looked at once the pull in flight has answered, so a
		// stop always waits for the same thing: the pull in hand (its page
		// is dropped: it was not handled and is read again next run) and
		// the pages written, until they are committed. Looked at before
		// the receive, it would depend on whether the reader had started.
		if r.stopRequested() {
			r.res.Stopped = true
			r.log.Info().Msg("stop requested: ending run after the pages in hand are committed")
			return c.close()
		}
		if got.err != nil {
			return firstErr(c.close(), fmt.Errorf("pull from %s: %w", r.src.Name, got.err))
		}
		pw := &pageWork{page: got.page, b: &state.Batch{}, keys: map[string]bool{}, committed: make(chan struct{})}
		for _, rec := range got.page.Records {
			pw.keys[r.src.Key(rec)] = true
		}
		open = pending(open)
		var last *pageWork
		for _, o := range open {
			if r.plan || o.overlaps(pw) {
				<-o.committed
			}
			last = o
		}
		if err := r.startPage(ctx, pw, last); err != nil {
			cerr := c.close()
			if !r.plan {
				_ = r.store().Commit(pw.b) // what prepare recorded (dead letters), without the cursor
			}
			return firstErr(cerr, err)
		}
		c.queue <- pw
		open = append(open, pw)
		if pw.page.Done {
			return c.close()
		}
	}
}

// pending drops the pages already committed.
func pending(open []*pageWork) []*pageWork {
	out := open[:0]
	for _, o := range open {
		select {
		case <-o.committed:
		default:
			out = append(out, o)
		}
	}
	return out
}

// committer settles and commits a run's pages in the order they come.
type committer struct {
	r      *run
	key    string
	before int
	queue  chan *pageWork
	done   chan struct{}
	mu     sync.Mutex
	err    error // the first failure; later pages commit without a cursor
}

func (r *run) newCommitter(key string, before int) *committer {
	c := &committer{r: r, key: key, before: before, queue: make(chan *pageWork, pipelineDepth-2), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *committer) loop() {
	defer close(c.done)
	pulled := 0
	for pw := range c.queue {
		ok := c.failed() == nil
		n, err := c.r.finishPage(c.key, pw, c.before, pulled, ok)
		close(pw.committed)
		pulled += n
		if err != nil && ok {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}
}

// failed is the error that stopped the committer, if any.
func (c *committer) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close waits for every queued page to be committed and returns the first
// failure.
func (c *committer) close() error {
	close(c.queue)
	<-c.done
	return c.failed()
}

// overlaps reports whether a page holds a record of p.
func (p *pageWork) overlaps(q *pageWork) bool {
	for k := range q.keys {
		if p.keys[k] {
			return true
		}
	}
	return false
}

// startPage prepares a page, commits its create intents and sends its
// writes after those of the page in flight (prev, or nil).
func (r *run) startPage(ctx context.Context, pw *pageWork, prev *pageWork) error {
	items, tasks, err := r.prepPage(pw.page.Records, pw.b)
	if err != nil {
		return err
	}
	pw.items, pw.tasks = items, tasks
	if !r.plan {
		if err := r.writeAhead(tasks); err != nil {
			return err
		}
	}
	var after *flight
	if prev != nil {
		after = prev.fl
	}
	pw.fl = r.dispatch(ctx, tasks, after)
	return nil
}

// finishPage waits for a page's writes, settles them and commits the page;
// with its cursor when advance is set and no write failed locally. before
// and pulled are the records an interrupted backfill handled and those of
// the run's earlier pages. It returns the page's record count.
func (r *run) finishPage(key string, pw *pageWork, before, pulled int, advance bool) (int, error) {
	fatal := pw.fl.wait()
	r.settlePage(pw.items, pw.tasks, pw.b)
	n := len(pw.page.Records)
	if !r.plan {
		if fatal == nil && advance {
			next := pw.page.Next
			if pw.page.Done && r.ro.Mode == ModeBackfill {
				next = nil // a finished backfill starts afresh next time
			}
			pw.b.SetCursor(key, next)
			if r.ro.Mode == ModeBackfill {
				var done []byte
				if next != nil {
					done = []byte(strconv.Itoa(before + pulled + n))
				}
				pw.b.SetCursor(backfillDoneKey(r.f.Name), done)
			}
		}
		if err := r.store().Commit(pw.b); err != nil {
			return 0, fmt.Errorf("commit page: %w", err)
		}
		r.committed(pw.tasks)
	}
	if fatal != nil || !advance {
		return 0, fatal
	}
	r.res.Pages++
	if r.ro.Progress != nil {
		total := pw.page.Total
		if total >= 0 {
			total += before // the connector's total covers the pull from the cursor on
		}
		r.progress(Progress{Flow: r.f.Name, Records: before + pulled + n, Pages: r.res.Pages, Total: total})
	}
	return n, nil
}
