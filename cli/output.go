package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/crmsync/crmsync/engine"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeStatus(w io.Writer, path string, sts []engine.FlowStatus) {
	fmt.Fprintf(w, "state: %s\n", path)
	for _, s := range sts {
		fmt.Fprintf(w, "\nflow %s: %s -> %s\n", s.Flow, s.Source, strings.Join(s.Targets, ", "))
		fmt.Fprintf(w, "  cursor:       %s\n", string(s.Cursor))
		if s.Backfill != nil {
			fmt.Fprintf(w, "  backfill:     %s (interrupted backfill; `crmsync backfill` resumes it)\n", string(s.Backfill))
		}
		if s.LastRun == nil {
			fmt.Fprintln(w, "  last run:     never")
		} else {
			r := s.LastRun
			fmt.Fprintf(w, "  last run:     %s (%s, took %s)\n", r.Finished.Format("2006-01-02 15:04:05Z07:00"), r.Mode, r.Finished.Sub(r.Started).Round(1e6))
			if r.Error != "" {
				fmt.Fprintf(w, "  error:        %s\n", r.Error)
			}
			systems := make([]string, 0, len(r.Counts))
			for n := range r.Counts {
				systems = append(systems, n)
			}
			sort.Strings(systems)
			for _, n := range systems {
				c := r.Counts[n]
				fmt.Fprintf(w, "  %-13s pulled %d, created %d, updated %d, converted %d, unchanged %d, skipped %d, failed %d\n",
					n+":", c["pulled"], c["created"], c["updated"], c["converted"], c["unchanged"], c["skipped"], c["failed"])
			}
		}
		fmt.Fprintf(w, "  pending:      %s\n", pendingLine(s.Pending))
		fmt.Fprintf(w, "  dead letters: %d\n", s.DeadLetters)
	}
}

// pendingLine shows pending writes per target ("bluerocktel 3, overplane 0").
func pendingLine(p map[string]int) string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, p[n]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ") + " (retried by every run)"
}

// writeUndelivered prints what a flow still owes its targets, per target,
// with up to limit entries each.
func writeUndelivered(w io.Writer, r *engine.Result, limit int) {
	if len(r.Undelivered) == 0 {
		return
	}
	by := map[string][]engine.Delivery{}
	for _, d := range r.Undelivered {
		by[d.Target] = append(by[d.Target], d)
	}
	targets := make([]string, 0, len(by))
	for t := range by {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		ds := by[t]
		n := map[string]int{}
		for _, d := range ds {
			n[d.Status]++
		}
		fmt.Fprintf(w, "  %s owes: %d pending (retried by every run), %d dead (see `crmsync deadletters list`)\n", t, n[engine.DeliveryPending], n[engine.DeliveryDead])
		for i, d := range ds {
			if i == limit {
				fmt.Fprintf(w, "    ... and %d more\n", len(ds)-limit)
				break
			}
			fmt.Fprintf(w, "    %s %s %s (source %s, %d attempt(s)): %s\n", d.Status, d.Op, d.CanonicalID, d.Source, d.Attempts, oneLine(d.Error))
		}
	}
}

// writeUnsupported prints, once per target and capability, the records
// that stay as they are because the target lacks what their write needs
// (e.g. a BlueRockTel server without a conversion route).
func writeUnsupported(w io.Writer, r *engine.Result) {
	for _, u := range r.Unsupported {
		fmt.Fprintf(w, "  %s cannot do this, %d record(s) stay as they are: %s\n", u.Target, u.Records, oneLine(u.Message))
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
