package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/engine"
)

func newSyncCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "sync [FLOW...]",
		Short: "Run the named flows once (all flows when none is named) and print a summary",
		Long: `Run flows once and print, per flow and system, how many records were pulled,
created, updated, converted, unchanged, skipped by a filter, or failed.
Exit status 1 when any flow ended with an error. SIGINT/SIGTERM finish the
page in hand, commit it and stop.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, flows, err := g.setup(args)
			if err != nil {
				return err
			}
			a, err := app.Open(cfg, log, app.Options{StatePath: g.state})
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := cmd.Context()
			stop := make(chan struct{})
			sigCtx, cancel := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			go func() { <-sigCtx.Done(); close(stop) }()
			var results []*engine.Result
			failed := false
			for _, f := range flows {
				res, err := a.Engine.Run(ctx, f, engine.RunOptions{Mode: engine.ModeSync, Stop: stop})
				results = append(results, res)
				if err != nil {
					failed = true
					log.Error().Err(err).Str("flow", f.Name).Msg("flow failed")
				}
			}
			return g.report(results, failed, writeSummary)
		},
	}
	g.addConfigFlags(c, true)
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print one JSON object with the counts per flow and system")
	return c
}

func writeJSONResults(w io.Writer, results []*engine.Result) error {
	out := map[string]any{}
	flows := map[string]*engine.Result{}
	for _, r := range results {
		flows[r.Flow] = r
	}
	out["flows"] = flows
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeSummary(w io.Writer, results []*engine.Result) {
	for _, r := range results {
		status := "ok"
		if r.Error != "" {
			status = "FAILED: " + r.Error
		} else if r.Stopped {
			status = "stopped early (resumes from the last committed page)"
		}
		fmt.Fprintf(w, "flow %s (%s): %s, %d page(s) in %s\n", r.Flow, r.Mode, status, r.Pages, r.Finished.Sub(r.Started).Round(1e6))
		names := make([]string, 0, len(r.Systems))
		deletes := false
		for n, c := range r.Systems {
			names = append(names, n)
			deletes = deletes || c.Deleted > 0 || c.Closed > 0
		}
		sort.Strings(names)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := "  system\tpulled\tcreated\tlinked\tupdated\tconverted\tunchanged\tskipped\tfailed\t"
		if deletes {
			head += "closed\tdeleted\t"
		}
		fmt.Fprintln(tw, head)
		for _, n := range names {
			c := r.Systems[n]
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t", n, c.Pulled, c.Created, c.Linked, c.Updated, c.Converted, c.Unchanged, c.Skipped, c.Failed)
			if deletes {
				fmt.Fprintf(tw, "%d\t%d\t", c.Closed, c.Deleted)
			}
			fmt.Fprintln(tw)
		}
		_ = tw.Flush()
		writeUndelivered(w, r, 10)
	}
}
