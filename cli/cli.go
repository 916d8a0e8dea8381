// Package cli holds crmsync's command-line interface (github.com/spf13/cobra:
// the de-facto standard Go CLI library, with help, flag parsing and
// completion we would otherwise write by hand). Each command only parses
// flags, builds parts through package app, and prints.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/engine"
)

// Env is what a command may touch: its output streams and environment.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Assets holds config.example.yaml and examples/mappings/*.yaml
	// (embedded by main), used by demo.
	Assets fs.FS
	// Types are the system types this build knows (nil: the built-in ones).
	Types *connectors.Registry
}

const warnLevel = zerolog.WarnLevel

// ExitError carries a process exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Execute runs the CLI with args and returns the process exit code.
func Execute(ctx context.Context, args []string, env Env) int {
	root, g := newRoot(env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if perr := g.prof.stop(); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(env.Stderr, "crmsync:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(env.Stderr, "crmsync:", err)
	return 1
}

type globals struct {
	env       Env
	config    string
	state     string
	logLevel  string
	logFormat string
	jsonOut   bool
	grace     time.Duration // --shutdown-grace; 0: the config's
	prof      profiles
}

// NewRoot builds the command tree.
func NewRoot(env Env) *cobra.Command {
	root, _ := newRoot(env)
	return root
}

func newRoot(env Env) (*cobra.Command, *globals) {
	if env.Types == nil {
		env.Types = builtin.Registry()
	}
	g := &globals{env: env}
	root := &cobra.Command{
		Use:   "crmsync",
		Short: "Keep the sales funnels of TribeCRM, Overplane and BlueRockTel in sync",
		Long: `crmsync pulls funnel records (organisations and persons, from suspect to customer)
from one CRM, maps them into one canonical model, and pushes them to the others,
keeping links, fingerprints and cursors in an embedded bbolt state file.

Start with "crmsync demo" (no setup needed), then see README.md and docs/.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.prof.start()
		},
	}
	g.prof.flags(root)
	root.SetVersionTemplate("crmsync {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: trace, debug, info, warn, error (default: the config's, else info)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: console or json (default: the config's, else console)")
	root.AddCommand(
		newSyncCmd(g), newRunCmd(g), newStatusCmd(g), newValidateCmd(g), newCheckCmd(g, true),
		newPlanCmd(g), newBackfillCmd(g), newDeadLettersCmd(g), newMappingCmd(g),
		newEmulateCmd(g), newDemoCmd(g), newHealthCmd(g), newSchemaCmd(g), newWebhooksCmd(g),
		newStateCmd(g), newBenchCmd(g),
	)
	return root, g
}

func (g *globals) addConfigFlags(c *cobra.Command, withState bool) {
	c.Flags().StringVarP(&g.config, "config", "c", "", "configuration file (required)")
	_ = c.MarkFlagRequired("config")
	_ = c.MarkFlagFilename("config", "yaml", "yml")
	if withState {
		c.Flags().StringVar(&g.state, "state", "", "state file (overrides the config's state)")
		_ = c.MarkFlagFilename("state")
	}
	if f := c.Flags().Lookup("flow"); f != nil {
		_ = c.RegisterFlagCompletionFunc("flow", g.completeFlows)
	}
}

// completeFlows completes flow names from the --config given so far (shell
// completion: crmsync sync -c crmsync.yaml <TAB>). Names already on the
// command line are left out.
func (g *globals) completeFlows(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if g.config == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := config.Load(g.config, g.env.Types)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, f := range cfg.Flows {
		if strings.HasPrefix(f.Name, toComplete) && !slices.Contains(args, f.Name) {
			out = append(out, cobra.CompletionWithDesc(f.Name, f.Source+" -> "+targetNames(f)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func targetNames(f *config.Flow) string {
	names := make([]string, 0, len(f.Targets))
	for _, t := range f.Targets {
		if t != nil {
			names = append(names, t.System)
		}
	}
	return strings.Join(names, ", ")
}

// addShutdownFlag adds --shutdown-grace (sync, backfill, run).
func (g *globals) addShutdownFlag(c *cobra.Command) {
	c.Flags().DurationVar(&g.grace, "shutdown-grace", 0,
		"how long SIGTERM/SIGINT waits for the page in hand before cancelling its requests (default: the config's shutdown_grace, else 10s)")
}

// shutdownGrace is --shutdown-grace when given, else the config's
// shutdown_grace.
func (g *globals) shutdownGrace(c *cobra.Command, cfg *config.Config) (time.Duration, error) {
	if !c.Flags().Changed("shutdown-grace") {
		return cfg.ShutdownGrace, nil
	}
	if g.grace <= 0 {
		return 0, &ExitError{Code: 2, Err: fmt.Errorf("--shutdown-grace %s must be positive (expected e.g. 10s)", g.grace)}
	}
	return g.grace, nil
}

func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.config, g.env.Types)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	return cfg, nil
}

// setup loads the config, builds the logger and resolves the named flows
// (all flows when names is empty).
func (g *globals) setup(names []string) (*config.Config, zerolog.Logger, []engine.Flow, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, zerolog.Nop(), nil, err
	}
	flows, err := app.Flows(cfg, names)
	if err != nil {
		return nil, zerolog.Nop(), nil, &ExitError{Code: 2, Err: err}
	}
	return cfg, g.logger(cfg), flows, nil
}

// report prints run results as JSON (--json) or with human, and turns a
// failed run into exit status 1.
func (g *globals) report(results []*engine.Result, failed bool, human func(io.Writer, []*engine.Result)) error {
	if g.jsonOut {
		if err := writeJSONResults(g.env.Stdout, results); err != nil {
			return err
		}
	} else {
		human(g.env.Stdout, results)
	}
	if failed {
		return &ExitError{Code: 1}
	}
	for _, r := range results {
		if len(r.Undelivered) > 0 {
			return &ExitError{Code: ExitUndelivered}
		}
	}
	return nil
}

// ExitUndelivered is the exit status of a sync, backfill or plan that
// ended without error but left writes pending or dead-lettered.
const ExitUndelivered = 3

// logger builds the process logger: console or JSON on stderr.
func (g *globals) logger(cfg *config.Config) zerolog.Logger {
	level, format := "info", "console"
	if cfg != nil {
		level, format = cfg.Log.Level, cfg.Log.Format
	}
	if g.logLevel != "" {
		level = g.logLevel
	}
	if g.logFormat != "" {
		format = g.logFormat
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	var w io.Writer = g.env.Stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: g.env.Stderr, TimeFormat: "15:04:05", NoColor: !isTerminal(g.env.Stderr)}
	}
	// Concurrent writes (several targets written at once) must not interleave.
	return zerolog.New(zerolog.SyncWriter(w)).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
