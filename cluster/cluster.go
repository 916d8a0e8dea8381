// Package cluster spreads a configuration's flows over the replicas that
// share one state database: each group of flows is run by at most one
// replica at a time, under a lease with a TTL and a fencing token kept in
// the database (state.Leaser). A Coordinator heartbeats, takes the groups
// assigned to its replica, renews them, and hands over the ones it no
// longer should hold once their runs end.
//
// Groups: flows that share a system (a source or a target) are leased
// together, so two replicas never write one target for two flows at once
// (one engine serialises its runs; see engine.Engine).
//
// Why a lease row with a token rather than advisory locks: an advisory lock
// belongs to a database session, so a replica that holds one but is paused
// (SIGSTOP, GC, a partition) keeps it for as long as its TCP connection
// lives, and nothing in a commit from another connection can check it. A
// row with an expiry in the database's clock and a token that grows on
// every change of hands can be checked by every commit (state.Leaser's
// Fenced view), whatever connection it comes on.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/state"
)

// DefaultTTL is a lease's time to live: a replica that dies loses its
// flows to the others within about TTL + TTL/3.
const DefaultTTL = 15 * time.Second

// ErrNotHeld is returned by Begin for a flow this replica does not hold.
var ErrNotHeld = errors.New("flow is leased to another replica")

// Options build a Coordinator.
type Options struct {
	Leaser state.Leaser
	// Replica names this process, unique among the replicas (NewReplicaID).
	Replica string
	// Info describes it for operators (host, version, admin address).
	Info string
	// Groups are the flows leased together (Groups computes them).
	Groups [][]string
	// TTL is a lease's time to live (DefaultTTL when zero); the
	// coordinator beats and renews every TTL/3.
	TTL    time.Duration
	Logger zerolog.Logger
	// Standalone makes a coordinator for a one-off command (sync,
	// backfill) beside the replicas: it sends no heartbeat, so no replica
	// counts it in the assignment, and it tries to take every group it is
	// given.
	Standalone bool
	// OnAcquire, when non-nil, is called with a group's flows right after
	// this replica took its lease (the daemon runs them at once: a flow
	// taken over from a replica that died continues without waiting for
	// its schedule). It must not block.
	OnAcquire func(flows []string)
}

// Coordinator holds this replica's leases.
type Coordinator struct {
	o      Options
	mu     sync.Mutex
	groups []*group
	byFlow map[string]*group
	alive  []state.Replica
}

type group struct {
	key   string // its first flow, by name
	flows []string
	// Under Coordinator.mu:
	leases   []state.Lease
	deadline time.Time // local monotonic: writes stop at it
	uses     int
	lost     chan struct{} // closed when the lease is lost
	assigned bool
}

func (g *group) held() bool { return g.leases != nil }

// New returns a Coordinator; Run makes it work.
func New(o Options) (*Coordinator, error) {
	if o.Leaser == nil || o.Replica == "" {
		return nil, errors.New("cluster: a leaser and a replica id are needed")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	c := &Coordinator{o: o, byFlow: map[string]*group{}}
	for _, fl := range o.Groups {
		fl = append([]string(nil), fl...)
		sort.Strings(fl)
		g := &group{key: fl[0], flows: fl}
		c.groups = append(c.groups, g)
		for _, f := range fl {
			c.byFlow[f] = g
		}
	}
	sort.Slice(c.groups, func(i, j int) bool { return c.groups[i].key < c.groups[j].key })
	return c, nil
}

// Replica is this replica's id.
func (c *Coordinator) Replica() string { return c.o.Replica }

// TTL is the leases' time to live.
func (c *Coordinator) TTL() time.Duration { return c.o.TTL }

// Run beats, takes, renews and hands over leases every TTL/3 until ctx is
// done, then releases every lease this replica holds and leaves (its runs
// must have ended: the daemon cancels ctx after its shutdown). It returns
// nil then.
func (c *Coordinator) Run(ctx context.Context) error {
	every := c.o.TTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			c.Leave()
			return nil
		case <-t.C:
		}
	}
}

// Leave ends this replica's leases so the others take them at their next
// tick instead of after the TTL (Run does it when its context ends).
func (c *Coordinator) Leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.mu.Lock()
	for _, g := range c.groups {
		if g.held() {
			c.lose(g)
		}
	}
	c.mu.Unlock()
	if err := c.o.Leaser.Leave(ctx, c.o.Replica); err != nil {
		c.o.Logger.Warn().Err(err).Msg("cluster: could not leave cleanly; the other replicas take this one's flows when its leases run out")
		return
	}
	c.o.Logger.Info().Str("replica", c.o.Replica).Msg("cluster: left; leases released")
}

// Tick does one round: heartbeat, assignment, acquisitions, renewals and
// releases. Run calls it; tests call it to step a coordinator.
func (c *Coordinator) Tick(ctx context.Context) {
	log := c.o.Logger
	var alive []state.Replica
	var err error
	if c.o.Standalone {
		alive = []state.Replica{{ID: c.o.Replica}}
	} else {
		alive, err = c.o.Leaser.Heartbeat(ctx, c.o.Replica, c.o.Info, c.o.TTL)
	}
	if err != nil {
		log.Warn().Err(err).Msg("cluster: heartbeat failed; keeping the leases in hand until they run out")
	}
	c.mu.Lock()
	if err == nil {
		c.alive = alive
		c.assign(alive)
	}
	var todo []*group
	todo = append(todo, c.groups...)
	c.mu.Unlock()
	var taken [][]string
	for _, g := range todo {
		if c.step(ctx, g) {
			taken = append(taken, g.flows)
		}
	}
	if c.o.OnAcquire != nil {
		for _, fl := range taken {
			c.o.OnAcquire(fl)
		}
	}
}

// assign marks the groups this replica should hold: the groups in key
// order dealt round the live replicas in id order, so every replica that
// sees the same replicas computes the same assignment, and the counts
// differ by at most one.
func (c *Coordinator) assign(alive []state.Replica) {
	me := -1
	for i, r := range alive {
		if r.ID == c.o.Replica {
			me = i
		}
	}
	for i, g := range c.groups {
		g.assigned = me >= 0 && (c.o.Standalone || i%len(alive) == me)
	}
}

// step renews, releases or acquires g's lease; it reports an acquisition.
func (c *Coordinator) step(ctx context.Context, g *group) (acquired bool) {
	log := c.o.Logger.With().Str("group", g.key).Logger()
	c.mu.Lock()
	held, assigned, busy, leases := g.held(), g.assigned, g.uses > 0, g.leases
	c.mu.Unlock()
	start := time.Now()
	switch {
	case held && !assigned && !busy:
		err := c.o.Leaser.Release(ctx, c.o.Replica, leases)
		c.mu.Lock()
		if g.uses == 0 && sameLeases(g.leases, leases) {
			c.lose(g)
		}
		c.mu.Unlock()
		if err != nil {
			log.Warn().Err(err).Msg("cluster: release failed; the lease runs out on its own")
		} else {
			log.Info().Strs("flows", g.flows).Msg("cluster: handed over (assigned to another replica)")
		}
	case held:
		ok, err := c.o.Leaser.Renew(ctx, c.o.Replica, leases, c.o.TTL)
		c.mu.Lock()
		defer c.mu.Unlock()
		if !sameLeases(g.leases, leases) {
			return false
		}
		switch {
		case err != nil:
			log.Warn().Err(err).Time("writes_stop_at", time.Now().Add(time.Until(g.deadline))).Msg("cluster: lease renewal failed; writes stop when the lease runs out unless a renewal succeeds")
		case !ok:
			log.Warn().Strs("flows", g.flows).Msg("cluster: lease lost (it ran out or another replica took it): runs of these flows stop")
			c.lose(g)
		default:
			g.deadline = start.Add(c.safe())
		}
	case assigned:
		got, ok, err := c.o.Leaser.Acquire(ctx, c.o.Replica, g.flows, c.o.TTL)
		if err != nil {
			log.Warn().Err(err).Msg("cluster: acquire failed")
			return false
		}
		if !ok {
			log.Debug().Msg("cluster: still held by another replica")
			return false
		}
		c.mu.Lock()
		g.leases, g.deadline, g.lost = got, start.Add(c.safe()), make(chan struct{})
		c.mu.Unlock()
		log.Info().Strs("flows", g.flows).Int64("token", got[0].Token).Msg("cluster: lease taken")
		return true
	}
	return false
}

// safe is how long after a successful acquire or renewal (counted from
// before the request) this replica still writes: 4/5 of the TTL, so that
// it stops before the database lets another replica take over, even with
// the two clocks running at slightly different rates.
func (c *Coordinator) safe() time.Duration { return c.o.TTL * 4 / 5 }

// lose forgets g's lease and tells its runs; under c.mu.
func (c *Coordinator) lose(g *group) {
	g.leases = nil
	if g.lost != nil {
		close(g.lost)
		g.lost = nil
	}
}

func sameLeases(a, b []state.Lease) bool {
	if len(a) != len(b) || a == nil {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Use is one run's hold on its flow's lease: writes go through Store, and
// Guard says whether the lease still stands (the engine asks it before
// every write to a target). End it when the run is over.
type Use struct {
	c     *Coordinator
	g     *group
	lease state.Lease
	// Store is the flow's state, fenced by the lease.
	Store state.Storage
	// Lost is closed when the lease is lost (the run should stop).
	Lost <-chan struct{}
	once sync.Once
}

// Begin starts a run of flow under this replica's lease, or returns an
// error wrapping ErrNotHeld (naming the holder when known).
func (c *Coordinator) Begin(flow string) (*Use, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.byFlow[flow]
	if !ok {
		return nil, fmt.Errorf("flow %s: not a configured flow: %w", flow, ErrNotHeld)
	}
	if !g.held() || time.Now().After(g.deadline) {
		return nil, fmt.Errorf("flow %s: %w", flow, ErrNotHeld)
	}
	var l state.Lease
	for _, x := range g.leases {
		if x.Flow == flow {
			l = x
		}
	}
	g.uses++
	return &Use{c: c, g: g, lease: l, Store: c.o.Leaser.Fenced(l), Lost: g.lost}, nil
}

// Guard returns nil while the lease stands by this replica's own clock.
// A replica paused past its lease finds its deadline passed as soon as
// it resumes (the monotonic clock kept counting), before any write.
func (u *Use) Guard() error {
	u.c.mu.Lock()
	defer u.c.mu.Unlock()
	if !u.g.holds(u.lease) {
		return fmt.Errorf("flow %s: lease %d lost: %w", u.lease.Flow, u.lease.Token, state.ErrFenced)
	}
	if time.Now().After(u.g.deadline) {
		return fmt.Errorf("flow %s: lease %d not renewed in time: %w", u.lease.Flow, u.lease.Token, state.ErrFenced)
	}
	return nil
}

func (g *group) holds(l state.Lease) bool {
	for _, x := range g.leases {
		if x == l {
			return true
		}
	}
	return false
}

// End ends the run's use of the lease; a group no longer assigned here is
// handed over at the next tick.
func (u *Use) End() {
	u.once.Do(func() {
		u.c.mu.Lock()
		u.g.uses--
		u.c.mu.Unlock()
	})
}

// Status is what this replica holds, for /readyz and the console.
type Status struct {
	Replica  string          `json:"replica"`
	Held     []string        `json:"held_flows"`
	Replicas []state.Replica `json:"replicas"`
}

// Status reports the flows this replica holds and the live replicas.
func (c *Coordinator) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Replica: c.o.Replica, Held: []string{}, Replicas: append([]state.Replica(nil), c.alive...)}
	for _, g := range c.groups {
		if g.held() {
			s.Held = append(s.Held, g.flows...)
		}
	}
	sort.Strings(s.Held)
	return s
}

// Holds reports whether this replica holds flow's lease now.
func (c *Coordinator) Holds(flow string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.byFlow[flow]
	return ok && g.held()
}

// Groups splits flows into the groups leased together: flows that share a
// system, directly or through other flows. systems maps each flow to the
// systems it reads or writes.
func Groups(systems map[string][]string) [][]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if parent[x] == "" || parent[x] == x {
			parent[x] = x
			return x
		}
		r := find(parent[x])
		parent[x] = r
		return r
	}
	names := make([]string, 0, len(systems))
	for f := range systems {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		for _, s := range systems[f] {
			a, b := find("f:"+f), find("s:"+s)
			if a != b {
				parent[a] = b
			}
		}
		find("f:" + f)
	}
	by := map[string][]string{}
	for _, f := range names {
		r := find("f:" + f)
		by[r] = append(by[r], f)
	}
	out := make([][]string, 0, len(by))
	for _, fl := range by {
		out = append(out, fl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// NewReplicaID names a replica: host, process id and a random suffix, so
// a restarted process is a new holder (its predecessor's leases run out
// and change hands with a new token).
func NewReplicaID(host string, pid int, random string) string {
	host = strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '_'
		}
		return r
	}, host)
	return fmt.Sprintf("%s-%d-%s", host, pid, random)
}

// Holders lists who holds each flow's lease now, from the database.
func (c *Coordinator) Holders(ctx context.Context) ([]state.Holder, error) {
	return c.o.Leaser.Holders(ctx)
}
