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
		fmt.Fprintf(w, "  dead letters: %d\n", s.DeadLetters)
	}
}
