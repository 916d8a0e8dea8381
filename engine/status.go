package engine

import (
	"encoding/json"

	"github.com/crmsync/crmsync/state"
)

// FlowStatus is what `crmsync status` shows for one flow.
type FlowStatus struct {
	Flow        string          `json:"flow"`
	Source      string          `json:"source"`
	Targets     []string        `json:"targets"`
	Cursor      json.RawMessage `json:"cursor"`
	Backfill    json.RawMessage `json:"backfill_cursor,omitempty"`
	LastRun     *state.Run      `json:"last_run"`
	DeadLetters int             `json:"dead_letters"`
	// Pending counts, per target, the writes the flow still owes it
	// (retried by every run).
	Pending map[string]int `json:"pending_writes"`
}

// Status reads each flow's cursor, last run, pending writes and dead-letter count.
func Status(st state.Storage, flows []Flow) ([]FlowStatus, error) {
	out := make([]FlowStatus, 0, len(flows))
	for _, f := range flows {
		fs := FlowStatus{Flow: f.Name, Source: f.Source}
		for _, t := range f.Targets {
			fs.Targets = append(fs.Targets, t.System)
		}
		c, err := st.Cursor(CursorKey(f.Name, f.Source))
		if err != nil {
			return nil, err
		}
		fs.Cursor = rawJSON(c)
		if b, err := st.Cursor(BackfillKey(f.Name)); err != nil {
			return nil, err
		} else if b != nil {
			fs.Backfill = rawJSON(b)
		}
		if fs.LastRun, err = st.LastRun(f.Name); err != nil {
			return nil, err
		}
		u, err := Undelivered(st, f.Name)
		if err != nil {
			return nil, err
		}
		fs.Pending = map[string]int{}
		for _, t := range f.Targets {
			fs.Pending[t.System] = 0
		}
		for _, d := range u {
			if d.Status == DeliveryPending {
				fs.Pending[d.Target]++
			} else {
				fs.DeadLetters++
			}
		}
		out = append(out, fs)
	}
	return out, nil
}

// rawJSON shows a cursor as JSON when it is JSON, else as a JSON string.
func rawJSON(b []byte) json.RawMessage {
	if b == nil {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}
