package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

func newPlanCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		ValidArgsFunction: g.completeFlows,
		Use:               "plan [FLOW...]",
		Short:             "Show what a sync would create, update, convert, delete or dead-letter, writing nothing",
		Long: `Dry run: the same code path as sync (pull, map, match, merge, decide), with
every write to a target replaced by a line of output and no state written:
the state file is opened read-only (or not at all when it does not exist).
Per target it lists creates, links to existing records, updates with field
diffs (old -> new), stage conversions, deletes/closes of a delete
reconciliation (when the flow's deletes.policy is close or delete), and
records that would be dead-lettered.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, flows, err := g.setup(args)
			if err != nil {
				return err
			}
			path := cfg.State
			if g.state != "" {
				path = g.state
			}
			if noState(path) {
				tmp, err := os.MkdirTemp("", "crmsync-plan-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				path = filepath.Join(tmp, "empty.db")
			}
			a, err := app.Open(cfg, log, app.Options{StatePath: path, ReadOnly: path == cfg.State || path == g.state})
			if err != nil {
				return err
			}
			defer a.Close()
			var results []*engine.Result
			failed := false
			for _, f := range flows {
				res, err := a.Engine.Run(cmd.Context(), f, engine.RunOptions{Mode: engine.ModePlan})
				if err != nil {
					failed = true
				}
				if err == nil && f.Deletes.Mode != "" && f.Deletes.Mode != "ignore" {
					rec, rerr := a.Engine.Reconcile(cmd.Context(), f, true)
					res.Plan = append(res.Plan, rec.Plan...)
					if rerr != nil {
						failed = true
						res.Error = rerr.Error()
					}
				}
				results = append(results, res)
			}
			return g.report(results, failed, writePlan)
		},
	}
	g.addConfigFlags(c, true)
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return c
}

func writePlan(w io.Writer, results []*engine.Result) {
	for _, r := range results {
		fmt.Fprintf(w, "flow %s: plan (nothing was written)\n", r.Flow)
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
		byTarget := map[string][]engine.Change{}
		for _, ch := range r.Plan {
			byTarget[ch.Target] = append(byTarget[ch.Target], ch)
		}
		targets := make([]string, 0, len(byTarget))
		for t := range byTarget {
			targets = append(targets, t)
		}
		sort.Strings(targets)
		if len(targets) == 0 && len(r.Undelivered) == 0 {
			fmt.Fprintln(w, "  no changes")
		}
		writeUndelivered(w, r, 20)
		writeUnsupported(w, r)
		for _, t := range targets {
			chs := byTarget[t]
			counts := map[engine.Op]int{}
			for _, ch := range chs {
				counts[ch.Op]++
			}
			var parts []string
			for _, op := range engine.Ops() {
				if counts[op] > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", counts[op], op))
				}
			}
			fmt.Fprintf(w, "  %s: %s\n", t, strings.Join(parts, ", "))
			for _, ch := range chs {
				label := ch.Name
				if label == "" {
					label = ch.CanonicalID
				}
				switch ch.Op {
				case engine.OpCreate:
					fmt.Fprintf(w, "    + create %s %q\n", ch.Entity, label)
				case engine.OpLink:
					fmt.Fprintf(w, "    = link %q to existing %s %s\n", label, ch.Entity, ch.TargetID)
				case engine.OpUpdate:
					fmt.Fprintf(w, "    ~ update %s %s %q\n", ch.Entity, ch.TargetID, label)
				case engine.OpConvert:
					fmt.Fprintf(w, "    > convert %s %s %q to %s\n", ch.Entity, ch.TargetID, label, ch.ToEntity)
				case engine.OpClose:
					fmt.Fprintf(w, "    x close %s %s %q (deleted at the source)\n", ch.Entity, ch.TargetID, label)
				case engine.OpDelete:
					fmt.Fprintf(w, "    - delete %s %s %q (deleted at the source)\n", ch.Entity, ch.TargetID, label)
				case engine.OpDeadLetter:
					fmt.Fprintf(w, "    ! dead-letter %s: %s\n", label, ch.Error)
				}
				if ch.Op == engine.OpCreate {
					for _, d := range ch.Fields {
						fmt.Fprintf(w, "        %s: %s\n", d.Field, show(d.New))
					}
					continue
				}
				for _, d := range ch.Fields {
					fmt.Fprintf(w, "        %s: %s -> %s\n", d.Field, show(d.Old), show(d.New))
				}
			}
		}
	}
}

func show(v any) string {
	if v == nil {
		return "(none)"
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// noState reports whether path holds no state yet: the file does not exist,
// or it is empty (0 bytes, as a touch or an interrupted first start leaves
// it), which every command takes as a new state file. Read-only commands
// then work on an empty state instead of opening the file.
func noState(path string) bool {
	if state.IsURL(path) {
		return false // a database: its schema says
	}
	fi, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist) || (err == nil && fi.Mode().IsRegular() && fi.Size() == 0)
}
