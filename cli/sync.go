package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/logkey"
)

func newSyncCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		ValidArgsFunction: g.completeFlows,
		Use:               "sync [FLOW...]",
		Short:             "Run the named flows once (all flows when none is named) and print a summary",
		Long: `Run flows once and print, per flow and system, how many records were pulled,
created, updated, converted, unchanged, skipped by a filter, or failed.
Exit status 1 when any flow ended with an error. SIGINT/SIGTERM finish the
page in hand, commit it and stop; requests still in flight after the
shutdown grace (shutdown_grace, --shutdown-grace) are cancelled. A second
signal cancels them at once and exits 130.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, flows, err := g.setup(args)
			if err != nil {
				return err
			}
			grace, err := g.shutdownGrace(cmd, cfg)
			if err != nil {
				return err
			}
			a, err := app.Open(cfg, log, app.Options{StatePath: g.state})
			if err != nil {
				return err
			}
			defer a.Close()
			ctx, stop, finish := handleSignals(cmd.Context(), grace, log, g.env.Stderr)
			defer finish()
			begin, release, err := a.OneOff(ctx, flows)
			if err != nil {
				return err
			}
			defer release()
			var results []*engine.Result
			failed := false
			for _, f := range flows {
				if ctx.Err() != nil {
					break // cut short: the flows left wait for the next run
				}
				ro, end, err := begin(f.Name, engine.RunOptions{Mode: engine.ModeSync, Stop: stop})
				if err != nil {
					return err
				}
				res, err := a.Engine.Run(ctx, f, ro)
				end()
				results = append(results, res)
				if err != nil {
					failed = true
					log.Error().Err(err).Str(logkey.Flow, f.Name).Msg("flow failed")
				}
			}
			if err := finish(); err != nil {
				_ = g.report(results, failed, writeSummary)
				return err
			}
			return g.report(results, failed, writeSummary)
		},
	}
	g.addConfigFlags(c, true)
	g.addShutdownFlag(c)
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
		writeUnsupported(w, r)
	}
}
