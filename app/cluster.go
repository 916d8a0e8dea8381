package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/crmsync/crmsync/cluster"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

// Cluster returns the coordinator that leases flows to this process when
// the state is shared by replicas (PostgreSQL), or nil (a bbolt file is
// held by one process). standalone is for a one-off command beside the
// replicas (cluster.Options.Standalone); info describes this process to
// operators.
func (a *App) Cluster(flows []engine.Flow, standalone bool, info string, onAcquire func([]string)) (*cluster.Coordinator, error) {
	l, ok := a.Store.(state.Leaser)
	if !ok {
		return nil, nil
	}
	systems := map[string][]string{}
	for _, f := range flows {
		s := []string{f.Source}
		for _, t := range f.Targets {
			s = append(s, t.System)
		}
		systems[f.Name] = s
	}
	id := a.Cfg.Cluster.Replica
	if id == "" || standalone {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = cluster.NewReplicaID(host, os.Getpid(), hex.EncodeToString(b[:]))
		if standalone {
			id = "oneoff-" + id
		}
	}
	return cluster.New(cluster.Options{Leaser: l, Replica: id, Info: info, Groups: cluster.Groups(systems),
		TTL: a.Cfg.Cluster.LeaseTTL, Logger: a.Log, Standalone: standalone, OnAcquire: onAcquire})
}

// OneOff takes the leases of flows for a one-off command (sync, backfill)
// on a shared state, and keeps them renewed until release is called. On
// a bbolt state it does nothing (the file lock excludes other processes).
// It fails, naming the holder, when a replica holds any of them.
func (a *App) OneOff(ctx context.Context, flows []engine.Flow) (begin func(flow string, ro engine.RunOptions) (engine.RunOptions, func(), error), release func(), err error) {
	c, err := a.Cluster(flows, true, "one-off command", nil)
	if err != nil || c == nil {
		return func(_ string, ro engine.RunOptions) (engine.RunOptions, func(), error) { return ro, func() {}, nil }, func() {}, err
	}
	c.Tick(ctx)
	var missing []string
	for _, f := range flows {
		if !c.Holds(f.Name) {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		who := ""
		if hs, herr := c.Holders(ctx); herr == nil {
			for _, h := range hs {
				for _, m := range missing {
					if h.Flow == m {
						who += fmt.Sprintf("; %s is held by replica %s", m, h.Replica)
					}
				}
			}
		}
		c.Leave() // releases what it took
		return nil, nil, fmt.Errorf("flows %s are leased to a running replica%s (use its console's \"run now\", or stop it)", strings.Join(missing, ", "), who)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(rctx) }()
	begin = func(flow string, ro engine.RunOptions) (engine.RunOptions, func(), error) {
		u, err := c.Begin(flow)
		if err != nil {
			return ro, nil, err
		}
		ro.Store, ro.Guard = u.Store, u.Guard
		return ro, u.End, nil
	}
	return begin, func() { cancel(); <-done }, nil
}
