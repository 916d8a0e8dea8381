package config

import (
	"regexp"
	"time"

	"github.com/crmsync/crmsync/state"
)

// Cluster tunes how replicas sharing a PostgreSQL state lease the flows
// (package cluster). Every `crmsync run` on a postgres:// state takes part;
// the keys are optional.
type Cluster struct {
	// LeaseTTL is how long a flow's lease lasts without renewal (renewed
	// every third of it). A replica that dies loses its flows to the
	// others within about 4/3 of it. Default cluster.DefaultTTL (15s).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// Replica names this process among the replicas; empty (the default)
	// is host-pid-random, new at every start. Give each replica its own.
	Replica string `yaml:"replica"`
}

// MinLeaseTTL is the shortest cluster.lease_ttl accepted.
const MinLeaseTTL = time.Second

var replicaRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)

func (v *validator) validateCluster() {
	c := v.c.Cluster
	line := func(k string) int { return v.pos.line("cluster", k) }
	set := c.LeaseTTL != 0 || c.Replica != ""
	if set && !state.IsURL(v.c.State) {
		v.add(v.pos.keyLine("cluster"), "cluster is set but state %s is a file (expected state: postgres://… shared by the replicas; a bbolt file serves one process)", v.c.State)
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < MinLeaseTTL {
		v.add(line("lease_ttl"), "cluster.lease_ttl %s is too short (expected at least %s, e.g. 15s; 0s for the default)", c.LeaseTTL, MinLeaseTTL)
	}
	if c.Replica != "" && !replicaRe.MatchString(c.Replica) {
		v.add(line("replica"), "cluster.replica %q is not a name of letters, digits and _ . : - (expected e.g. crmsync-0, or nothing for host-pid-random)", c.Replica)
	}
}
