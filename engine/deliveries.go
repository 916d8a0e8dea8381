package engine

import (
	"sort"
	"time"

	"github.com/crmsync/crmsync/state"
)

// Delivery is one write a flow still owes a target: pending (the target
// failed; every run retries it) or dead (the target refused the record;
// see `crmsync deadletters`).
type Delivery struct {
	Target      string    `json:"target"`
	CanonicalID string    `json:"canonical_id,omitempty"`
	Source      string    `json:"source,omitempty"` // "<entity>/<id>" in the source
	Op          Op        `json:"op"`
	Status      string    `json:"status"` // pending or dead
	Attempts    int       `json:"attempts"`
	Since       time.Time `json:"since"`
	Error       string    `json:"error"`
	Key         string    `json:"key"`
}

// Delivery statuses.
const (
	DeliveryPending = "pending"
	DeliveryDead    = "dead"
)

// Undelivered lists what a flow still owes its targets, in key order.
func Undelivered(st state.Storage, flow string) ([]Delivery, error) {
	dls, err := st.DeadLetters(flow)
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(dls))
	for _, d := range dls {
		status := DeliveryDead
		if d.Pending {
			status = DeliveryPending
		}
		src := ""
		if d.SourceID != "" {
			src = d.SourceEntity + "/" + d.SourceID
		}
		out = append(out, Delivery{Target: d.System, CanonicalID: d.CanonicalID, Source: src, Op: Op(d.Op), Status: status,
			Attempts: d.Attempts, Since: d.FirstAt, Error: d.Error, Key: d.Key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// PendingFor counts the pending deliveries to one target.
func (r *Result) PendingFor(target string) int {
	n := 0
	for _, d := range r.Undelivered {
		if d.Status == DeliveryPending && d.Target == target {
			n++
		}
	}
	return n
}

// Pending counts every pending delivery of the flow.
func (r *Result) Pending() int { return r.count(DeliveryPending) }

// Dead counts the flow's dead letters.
func (r *Result) Dead() int { return r.count(DeliveryDead) }

func (r *Result) count(status string) int {
	n := 0
	for _, d := range r.Undelivered {
		if d.Status == status {
			n++
		}
	}
	return n
}
