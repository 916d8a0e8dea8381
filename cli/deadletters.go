package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

// deadLetter reads one dead letter, or says it does not exist.
func deadLetter(a *app.App, key string) (*state.DeadLetter, error) {
	d, err := a.Store.DeadLetter(key)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("no dead letter %q (see `crmsync deadletters list`)", key)}
	}
	return d, nil
}

func newDeadLettersCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "deadletters",
		Short: "List, show, replay or drop records a target rejected",
		Long: `A dead letter is a record that could not be written: the target rejected it
(a 422, a validation error), the mapping could not map it, or it matched
several records in a target. Each keeps the error, the payload, the
attempts and the times. Every sync retries a flow's dead letters (up to the
flow's max_retries); replay retries them now.`,
	}
	var flow string
	var withPending bool
	open := func() (*app.App, error) {
		cfg, err := g.loadConfig()
		if err != nil {
			return nil, err
		}
		return app.Open(cfg, g.logger(cfg), app.Options{StatePath: g.state})
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters (all flows, or --flow)",
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := open()
			if err != nil {
				return err
			}
			defer a.Close()
			all, err := a.Store.DeadLetters(flow)
			if err != nil {
				return err
			}
			var dls []state.DeadLetter
			for _, d := range all {
				if !d.Pending || withPending {
					dls = append(dls, d)
				}
			}
			if g.jsonOut {
				if dls == nil {
					dls = []state.DeadLetter{}
				}
				return writeJSON(g.env.Stdout, map[string]any{"dead_letters": dls})
			}
			if len(dls) == 0 {
				fmt.Fprintln(g.env.Stdout, "no dead letters")
				return nil
			}
			tw := tabwriter.NewWriter(g.env.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tSTATUS\tOP\tATTEMPTS\tLAST\tERROR")
			for _, d := range dls {
				msg := d.Error
				if len(msg) > 100 {
					msg = msg[:100] + "…"
				}
				status := engine.DeliveryDead
				if d.Pending {
					status = engine.DeliveryPending
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Key, status, d.Op, d.Attempts, d.LastAt.Format("2006-01-02 15:04:05"), strings.ReplaceAll(msg, "\n", " "))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&flow, "flow", "", "only this flow's dead letters")
	list.Flags().BoolVar(&withPending, "pending", false, "also list pending writes (a target's failure, retried by every run)")
	show := &cobra.Command{
		Use:   "show KEY",
		Short: "Show one dead letter with its error and payload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := open()
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := deadLetter(a, args[0])
			if err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(g.env.Stdout, d)
			}
			fmt.Fprintf(g.env.Stdout, "key:       %s\nflow:      %s\ntarget:    %s\nop:        %s\nsource:    %s %s %s\ncanonical: %s\nattempts:  %d (first %s, last %s)\nerror:     %s\npayload:\n",
				d.Key, d.Flow, d.System, d.Op, d.SourceSystem, d.SourceEntity, d.SourceID, d.CanonicalID, d.Attempts,
				d.FirstAt.Format("2006-01-02 15:04:05Z07:00"), d.LastAt.Format("2006-01-02 15:04:05Z07:00"), d.Error)
			return writeJSON(g.env.Stdout, d.Payload)
		},
	}
	var all bool
	replay := &cobra.Command{
		Use:   "replay [KEY]",
		Short: "Retry one dead letter (or --all of a --flow) now",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 0) != all {
				return &ExitError{Code: 2, Err: fmt.Errorf("give a KEY, or --all with --flow")}
			}
			a, err := open()
			if errors.Is(err, state.ErrLocked) && len(args) == 1 {
				return g.askDaemon(cmd.Context(), "replay", args[0], err)
			}
			if err != nil {
				return err
			}
			defer a.Close()
			name, key := flow, ""
			if len(args) == 1 {
				key = args[0]
				d, err := deadLetter(a, key)
				if err != nil {
					return err
				}
				name = d.Flow
			}
			flows, err := app.Flows(a.Cfg, []string{name})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			// Beside replicas on a shared state, under the flow's lease.
			begin, release, err := a.OneOff(cmd.Context(), flows)
			if err != nil {
				return err
			}
			defer release()
			ro, end, err := begin(name, engine.RunOptions{})
			if err != nil {
				return err
			}
			res, err := a.Engine.Replay(cmd.Context(), flows[0], key, ro)
			end()
			if g.jsonOut {
				if jerr := writeJSONResults(g.env.Stdout, []*engine.Result{res}); jerr != nil {
					return jerr
				}
			} else {
				writeSummary(g.env.Stdout, []*engine.Result{res})
				left, _ := a.Store.DeadLetters(name)
				fmt.Fprintf(g.env.Stdout, "dead letters left in flow %s: %d\n", name, len(left))
			}
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every dead letter of --flow")
	replay.Flags().StringVar(&flow, "flow", "", "the flow (with --all)")
	drop := &cobra.Command{
		Use:   "drop KEY",
		Short: "Forget a dead letter (the record is not retried any more)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := open()
			if errors.Is(err, state.ErrLocked) {
				return g.askDaemon(cmd.Context(), "drop", args[0], err)
			}
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := deadLetter(a, args[0])
			if err != nil {
				return err
			}
			st := a.Store
			if flows, ferr := app.Flows(a.Cfg, []string{d.Flow}); ferr == nil {
				// Beside replicas on a shared state, under the flow's lease.
				begin, release, err := a.OneOff(cmd.Context(), flows)
				if err != nil {
					return err
				}
				defer release()
				ro, end, err := begin(d.Flow, engine.RunOptions{})
				if err != nil {
					return err
				}
				defer end()
				if ro.Store != nil {
					st = ro.Store
				}
			}
			if err := st.DropDeadLetter(args[0]); err != nil {
				return err
			}
			if g.jsonOut {
				return writeJSON(g.env.Stdout, map[string]string{"dropped": args[0]})
			}
			fmt.Fprintf(g.env.Stdout, "dropped %s\n", args[0])
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, show, replay, drop} {
		g.addConfigFlags(c, true)
		c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
		root.AddCommand(c)
	}
	return root
}

// askDaemon hands a replay or drop of one dead letter to the running daemon
// that holds the state file (its console's endpoint, which waits for the
// flow's run), when the config gives its admin address and token; locked is
// the error of opening the state.
func (g *globals) askDaemon(ctx context.Context, action, key string, locked error) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	token := cfg.Admin.Token.Value()
	if cfg.Admin.Listen == "" || token == "" {
		return fmt.Errorf("%w (a running `crmsync run` holds it: %s the dead letter from its console, or set admin.listen and admin.token so that this command asks it)", locked, action)
	}
	code, body, err := adminDo(ctx, http.MethodPost, cfg.Admin.Listen, "/deadletters/"+action+"/"+url.PathEscape(key), token)
	if err != nil {
		return fmt.Errorf("%w; asking the daemon at %s failed too: %v", locked, cfg.Admin.Listen, err)
	}
	var ans struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &ans)
	if g.jsonOut {
		if err := writeJSON(g.env.Stdout, map[string]any{"status": code, "message": ans.Message, "key": key}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.env.Stdout, "the running daemon answered %d: %s\n", code, ans.Message)
	}
	if code/100 != 2 {
		return &ExitError{Code: 1}
	}
	return nil
}
