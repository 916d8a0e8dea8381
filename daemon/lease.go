package daemon

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/logkey"
)

// leased returns ro for a run of flow under this replica's lease: its
// state fenced by the lease, its writes guarded by it, and its Stop also
// closed when the lease is lost; end ends the run's use of the lease.
// Without a cluster, ro is returned as it is. The error wraps
// cluster.ErrNotHeld when this replica does not hold the flow.
func (d *Daemon) leased(flow string, ro engine.RunOptions) (engine.RunOptions, func(), error) {
	c := d.o.Cluster
	if c == nil {
		return ro, func() {}, nil
	}
	u, err := c.Begin(flow)
	if err != nil {
		return ro, nil, err
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	outer := ro.Stop
	go func() {
		defer close(stop)
		select {
		case <-outer:
		case <-u.Lost:
		case <-done:
		}
	}()
	ro.Store, ro.Guard, ro.Stop = u.Store, u.Guard, stop
	return ro, func() { close(done); u.End() }, nil
}

// notHeld is the console's answer for an action on a flow another
// replica holds (or nobody holds right now).
func (d *Daemon) notHeld(ctx context.Context, flow string) actionAnswer {
	msg := "flow " + flow + " is not leased to this replica (" + d.o.Cluster.Replica() + ")"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if hs, err := d.o.Cluster.Holders(ctx); err == nil {
		for _, h := range hs {
			if h.Flow == flow {
				msg += ": replica " + h.Replica + " holds it; use that replica's console"
				return actionAnswer{Status: http.StatusConflict, Message: msg, Flow: flow}
			}
		}
	}
	msg += " and no replica holds it right now: try again in a few seconds"
	return actionAnswer{Status: http.StatusConflict, Message: msg, Flow: flow}
}

// holds reports whether this daemon may run flow now: always without a
// cluster.
func (d *Daemon) holds(flow string) bool {
	return d.o.Cluster == nil || d.o.Cluster.Holds(flow)
}

// startCluster runs the coordinator and the listener for runs passed by
// other replicas; the returned function stops both and waits for them.
func (d *Daemon) startCluster() (stop func()) {
	if d.o.Cluster == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.o.Cluster.Run(ctx)
	}()
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		d.listen(ctx)
	}()
	return func() { cancel(); <-done; <-listening }
}

// forward hands an event's run to the replica that holds flow (a hint
// on the database; the holder's schedule is the safety net).
func (d *Daemon) forward(flow string) {
	n := d.o.Notifier
	if n == nil {
		d.o.Logger.Debug().Str(logkey.Flow, flow).Msg("run asked for a flow another replica holds: its schedule picks the change up")
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Notify(ctx, flow); err != nil {
			d.o.Logger.Warn().Str(logkey.Flow, flow).Err(err).Msg("could not pass the run to the replica holding the flow: its schedule picks the change up")
			return
		}
		d.o.Logger.Debug().Str(logkey.Flow, flow).Msg("run passed to the replica holding the flow")
	}()
}

// listen runs the flows other replicas pass here (when this one holds
// them) until ctx is done, listening again after a broken connection.
func (d *Daemon) listen(ctx context.Context) {
	n := d.o.Notifier
	if n == nil {
		return
	}
	for ctx.Err() == nil {
		err := n.Listen(ctx, func(flow string) {
			if d.holds(flow) { // never passed on again: no ping-pong
				d.Trigger(flow)
			}
		})
		if ctx.Err() != nil {
			return
		}
		d.o.Logger.Warn().Err(err).Msg("listening for runs passed by other replicas failed; listening again in 5s")
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// OnAcquire is what a Coordinator's Options.OnAcquire should call: the
// flows this replica just took over run now.
func (d *Daemon) OnAcquire(flows []string) {
	for _, f := range flows {
		d.o.Logger.Info().Str(logkey.Flow, f).Msg("flow leased to this replica: running it now")
		d.Trigger(f)
	}
}

// clusterView fills the console's cluster line and returns each flow's
// holder (nil without a cluster).
func (d *Daemon) clusterView(ctx context.Context, page *consolePage) map[string]string {
	c := d.o.Cluster
	if c == nil {
		return nil
	}
	st := c.Status()
	page.Cluster = fmt.Sprintf("replica %s, one of %d sharing the state; holds %d of %d flows", st.Replica, len(st.Replicas), len(st.Held), len(d.o.Jobs))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := map[string]string{}
	hs, err := c.Holders(ctx)
	if err != nil {
		page.Cluster += " (leases: " + err.Error() + ")"
		return out
	}
	for _, h := range hs {
		out[h.Flow] = h.Replica
	}
	return out
}
