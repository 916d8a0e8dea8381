package cli

import (
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	o := bench.Options{}
	var jsonOut bool
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure a first backfill at several sizes against a plain pull→map→POST loop",
		Long: `For each size N (--sizes), seed N TribeCRM records in emulators started as a
child process ("crmsync emulate", free loopback ports, empty targets), then run,
each as a child process measured by wait4 (CPU, peak RSS):
  1. "crmsync backfill tribecrm-to-others" into the empty targets,
  2. the same backfill again with nothing changed (it must write nothing),
  3. on fresh emulators, a plain loop that only pulls, maps and POSTs the same
     records at the flow's write_concurrency (no state),
  4. on fresh emulators, the targets' raw create ceiling: the same records,
     pulled and mapped before the clock starts (at most 100,000 of them),
     POSTed at the same write_concurrency and nothing else.
With --runs > 1 the arms take turns to go first and every figure is the
median. The configuration is
config.example.yaml with rate limits off, only that flow and the --targets;
the state file lives in a temporary directory, removed after.

Per size it prints records/s, CPU per record, peak RSS of the crmsync
process, state bytes per record, requests per record (served by the
emulators), the re-run's writes and reads, the ratio of crmsync's records/s
to the plain loop's, and the ratio of its creates/s to the create ceiling's. --json prints the same as one JSON object.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.env.Assets == nil {
				return fmt.Errorf("bench: the example config is not embedded in this build")
			}
			o.Assets = g.env.Assets
			o.Progress = g.env.Stderr // stdout has the table or the JSON only
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			rep, err := bench.Run(ctx, o)
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(g.env.Stdout, rep)
			}
			writeBenchTable(g.env.Stdout, rep)
			return nil
		},
	}
	c.Flags().IntSliceVar(&o.Sizes, "sizes", bench.DefaultSizes, "record counts to measure, e.g. 20000,100000,1000000")
	c.Flags().StringSliceVar(&o.Targets, "targets", []string{"bluerocktel"}, "the flow's targets to write to (bluerocktel, overplane)")
	c.Flags().IntVar(&o.Runs, "runs", 1, "runs per size, engine and plain loop alternated; figures are medians")
	c.Flags().StringVar(&o.Addr, "addr", "127.0.0.1:0", "the emulators' listen address (port 0: free ports)")
	c.Flags().StringVar(&o.Exe, "exe", "", "crmsync binary to measure (default: this one)")
	c.Flags().StringVar(&o.Profile, "profile", "", "directory for pprof CPU and heap profiles of the first backfill and the plain loop per size")
	c.Flags().BoolVar(&jsonOut, "json", false, "print the figures as one JSON object")
	c.AddCommand(newPlainLoopCmd(g), newCreateCeilingCmd(g))
	return c
}

// newCreateCeilingCmd is the create ceiling the bench runs as a child
// process.
func newCreateCeilingCmd(g *globals) *cobra.Command {
	var flow string
	c := &cobra.Command{
		Use:    "create-ceiling",
		Short:  "Pull and map a flow's source, then time POSTing it to the targets, nothing else (bench's ceiling)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := bench.CreateCeilingConfig(cmd.Context(), g.config, flow, g.env.Types)
			if err != nil {
				return err
			}
			return writeJSON(g.env.Stdout, res)
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().StringVar(&flow, "flow", bench.Flow, "flow whose targets get the creates")
	return c
}

// newPlainLoopCmd is the plain loop the bench runs as a child process.
func newPlainLoopCmd(g *globals) *cobra.Command {
	var flow string
	c := &cobra.Command{
		Use:    "plain-loop",
		Short:  "Copy a flow's source into its targets by pull, map, POST, nothing else (bench's reference)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := bench.PlainLoopConfig(cmd.Context(), g.config, flow, g.env.Types)
			if err != nil {
				return err
			}
			return writeJSON(g.env.Stdout, bench.PlainResult{Created: n})
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().StringVar(&flow, "flow", bench.Flow, "flow to copy")
	return c
}

func writeBenchTable(w io.Writer, r *bench.Report) {
	fmt.Fprintf(w, "flow %s: %s -> %v, %d writes in flight per target, %d run(s) per size (medians)\n\n",
		r.Flow, r.Source, r.Targets, r.WriteConcurrency, r.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "records\t\trecords/s\tCPU µs/rec\temulators µs/rec\tcores busy\tpeak RSS MiB\tstate B/rec\treq/rec\twrites\treads\tratio\tvs ceiling\t")
	for _, s := range r.Sizes {
		row := func(name string, m bench.Measure, state, ratio, ceiling string) {
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%.0f\t%.2f\t%.1f\t%s\t%.3f\t%d\t%d\t%s\t%s\t\n", s.Records, name, m.RecordsPerSecond, m.CPUPerRecordUS,
				m.EmulatorCPUPerRecordUS, m.CoresBusy, float64(m.PeakRSSBytes)/(1<<20), state, m.RequestsPerRecord, m.Writes, m.Reads, ratio, ceiling)
		}
		row("crmsync", s.Engine, fmt.Sprintf("%.0f", s.StateBytesPerRecord), fmt.Sprintf("%.2f", s.Ratio), fmt.Sprintf("%.2f", s.CeilingRatio))
		row("re-run", s.Rerun, "", "", "")
		row("plain loop", s.Plain, "", "", "")
		fmt.Fprintf(tw, "%d\tcreate ceiling\t%.0f creates/s\t\t\t\t\t\t\t%d\t\t\t\t\n", s.Records, s.Ceiling.CreatesPerSecond, s.Ceiling.Created)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nratio: crmsync's records/s over the plain loop's; vs ceiling: crmsync's creates/s over the create ceiling's")
	fmt.Fprintln(w, "(creates alone, same writes in flight); writes and reads: requests the emulators served; emulators µs/rec:")
	fmt.Fprintln(w, "the emulators' process CPU per record; cores busy: crmsync's and the emulators' CPU over the wall time")
}
