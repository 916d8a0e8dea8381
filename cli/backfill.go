package cli

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
)

func newBackfillCmd(g *globals) *cobra.Command {
	var since string
	var restart bool
	c := &cobra.Command{
		ValidArgsFunction: g.completeFlows,
		Use:               "backfill FLOW",
		Short:             "Re-read a flow's source from a date (or the beginning) without touching its scheduled cursor",
		Long: `Re-read the source of FLOW from --since (or from the beginning) and sync every
record, using a cursor of its own: the scheduled cursor is left alone. Records
already in sync make no writes. A progress bar (records, rate, ETA when the API
reports a total) is shown on a terminal, plain log lines otherwise. An
interrupted backfill (SIGINT/SIGTERM, crash) resumes from its last committed
page when run again; --restart starts over. A signal finishes the page in
hand; requests still in flight after the shutdown grace (shutdown_grace,
--shutdown-grace) are cancelled, and a second signal cancels them at once
and exits 130.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, flows, err := g.setup(args)
			if err != nil {
				return err
			}
			var from time.Time
			if since != "" {
				if from, err = funnel.ParseTime(since); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--since: %w (expected e.g. 2026-01-31 or 2026-01-31T08:00:00Z)", err)}
				}
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
			f := flows[0]
			begin, release, err := a.OneOff(cmd.Context(), flows[:1])
			if err != nil {
				return err
			}
			defer release()
			if restart {
				if err := a.Engine.RestartBackfill(f.Name); err != nil {
					return err
				}
			} else if resumed, err := a.Engine.BackfillInterrupted(f.Name); err == nil && resumed {
				log.Info().Str(logkey.Flow, f.Name).Msg("resuming the interrupted backfill from its last committed page (--restart starts over)")
			}
			ctx, stop, finish := handleSignals(cmd.Context(), grace, log, g.env.Stderr)
			defer finish()
			var bar *progressbar.ProgressBar
			started := time.Now()
			readLogs := 0
			progress := func(p engine.Progress) {
				if p.Reading != "" {
					// Before its first creates a backfill reads each target
					// once (to match existing records): say so, instead of
					// a bar that stands still.
					msg := fmt.Sprintf("reading %s to match existing records: %d read", p.Reading, p.Read)
					if p.Done {
						msg = fmt.Sprintf("read %s to match existing records: %d records", p.Reading, p.Read)
					}
					switch {
					case bar != nil:
						bar.Describe("backfill " + f.Name + " (" + msg + ")")
						if p.Done {
							bar.Describe("backfill " + f.Name)
						}
					case isTerminal(g.env.Stderr):
						fmt.Fprintf(g.env.Stderr, "\r%s", msg)
						if p.Done {
							fmt.Fprintln(g.env.Stderr)
						}
					default:
						if readLogs++; !p.Done && readLogs%10 != 1 {
							return // plain logs: the first page, every tenth, and the end
						}
						log.Info().Str(logkey.Flow, f.Name).Str(logkey.Target, p.Reading).Int("read", p.Read).Bool("done", p.Done).Msg(msg)
					}
					return
				}
				if isTerminal(g.env.Stderr) {
					if bar == nil {
						bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(g.env.Stderr),
							progressbar.OptionSetDescription("backfill "+f.Name), progressbar.OptionShowCount(),
							progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
							progressbar.OptionSetPredictTime(p.Total > 0), progressbar.OptionThrottle(200*time.Millisecond))
					}
					if p.Total > 0 {
						bar.ChangeMax(max(p.Total, p.Records))
					}
					_ = bar.Set(p.Records)
					return
				}
				rate := float64(p.Records) / time.Since(started).Seconds()
				ev := log.Info().Str(logkey.Flow, f.Name).Int("records", p.Records).Int("pages", p.Pages).Float64("records_per_s", float64(int(rate*10))/10)
				if p.Total > 0 && rate > 0 && p.Total >= p.Records {
					// A duration with its unit (eta=1m40s): zerolog's Dur
					// writes a bare number of milliseconds.
					ev = ev.Int("total", p.Total).Str("eta", time.Duration(float64(p.Total-p.Records)/rate*float64(time.Second)).Round(time.Second).String())
				}
				ev.Msg("backfill progress")
			}
			ro, end, err := begin(f.Name, engine.RunOptions{Mode: engine.ModeBackfill, Since: from, Stop: stop, Progress: progress})
			if err != nil {
				return err
			}
			res, err := a.Engine.Run(ctx, f, ro)
			end()
			if bar != nil {
				if err == nil && !res.Stopped {
					_ = bar.Finish()
				} else {
					_ = bar.Exit() // stopped or failed: the bar stays where it got to, not at 100 %
				}
				fmt.Fprintln(g.env.Stderr)
			}
			if g.jsonOut {
				if jerr := writeJSONResults(g.env.Stdout, []*engine.Result{res}); jerr != nil {
					return jerr
				}
			} else {
				writeSummary(g.env.Stdout, []*engine.Result{res})
				pulled := 0
				if c := res.Systems[f.Source]; c != nil {
					pulled = c.Pulled
				}
				if d := res.Finished.Sub(res.Started).Seconds(); d > 0 {
					fmt.Fprintf(g.env.Stdout, "  %.0f records/s\n", float64(pulled)/d)
				}
			}
			if ierr := finish(); ierr != nil {
				return ierr
			}
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	g.addConfigFlags(c, true)
	g.addShutdownFlag(c)
	c.Flags().StringVar(&since, "since", "", "start at this date/time (UTC unless it has a zone); default: the beginning")
	c.Flags().BoolVar(&restart, "restart", false, "forget an interrupted backfill and start over")
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print the result as JSON")
	return c
}
