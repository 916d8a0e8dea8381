package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/state"
)

func newStateCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "state",
		Short: "Move the state between engines (bbolt file, PostgreSQL) or compact the state file",
	}
	c.AddCommand(newStateMigrateCmd(g), newStateCompactCmd(g))
	return c
}

type migrateFlags struct {
	from, to string
	force    bool
	batch    int
	jsonOut  bool
}

func newStateMigrateCmd(g *globals) *cobra.Command {
	var f migrateFlags
	c := &cobra.Command{
		Use:   "migrate --from SRC --to DST",
		Short: "Copy all state from one store to another (bbolt file or postgres:// URL, either way) and verify the copy",
		Long: `Copies everything the source holds (cursors, golden records, links, fingerprints,
create intents, dead letters and pending deliveries, run history) into the
destination, in batches, then exports both and compares them.

SRC and DST are each a bbolt state file or a postgres:// URL. Stop the daemon
first: a migration copies a snapshot of the source, and a source file a
daemon holds is refused. A destination that already holds state is refused
unless --force (entries with the same key are then replaced, others kept).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd.Context(), g, f)
		},
	}
	c.Flags().StringVar(&f.from, "from", "", "source: a state file or postgres:// URL (required)")
	c.Flags().StringVar(&f.to, "to", "", "destination: a state file or postgres:// URL (required)")
	c.Flags().BoolVar(&f.force, "force", false, "copy into a destination that already holds state")
	c.Flags().IntVar(&f.batch, "batch", state.DefaultCopyBatch, "changes per commit")
	c.Flags().BoolVar(&f.jsonOut, "json", false, "print the counts as JSON")
	_ = c.MarkFlagRequired("from")
	_ = c.MarkFlagRequired("to")
	return c
}

// migrateResult is what migrate prints with --json.
type migrateResult struct {
	From     string         `json:"from"`
	To       string         `json:"to"`
	Counts   map[string]int `json:"counts"`
	Verified int            `json:"verified"`
	Extra    int            `json:"extra_in_destination"`
}

func runMigrate(ctx context.Context, g *globals, f migrateFlags) error {
	if err := checkMigrateArgs(f); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	src, err := openSource(ctx, f.from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := app.OpenState(ctx, f.to, false)
	if errors.Is(err, state.ErrLocked) {
		return inUse("destination", f.to, "migrate")
	}
	if err != nil {
		return fmt.Errorf("open the destination: %w", err)
	}
	defer dst.Close()
	if err := checkNoHolders(ctx, dst, "destination", f.to); err != nil {
		return err
	}
	held, err := holdings(dst)
	if err != nil {
		return err
	}
	if held != "" && !f.force {
		return &ExitError{Code: 1, Err: fmt.Errorf("destination %s already holds state (%s); add --force to copy over it (entries with the same key are replaced, others kept)",
			state.Describe(f.to), held)}
	}
	res := migrateResult{From: state.Describe(f.from), To: state.Describe(f.to)}
	if err := copyAndVerify(ctx, g.env.Stderr, src, dst, f, held != "", &res); err != nil {
		return err
	}
	if f.jsonOut {
		return writeJSON(g.env.Stdout, res)
	}
	return printMigrate(g.env.Stdout, res)
}

func checkMigrateArgs(f migrateFlags) error {
	if f.from == "" || f.to == "" {
		return errors.New("--from and --to are both required")
	}
	if f.batch <= 0 {
		return fmt.Errorf("--batch %d must be positive", f.batch)
	}
	for _, s := range []string{f.from, f.to} {
		if looksLikeKeyValueDSN(s) {
			return fmt.Errorf("%q looks like a key=value connection string: give a postgres:// URL (or a file name without \"host=\" or \"dbname=\")", s)
		}
	}
	if sameStore(f.from, f.to) {
		return fmt.Errorf("--from and --to name the same state (%s)", state.Describe(f.from))
	}
	return nil
}

// looksLikeKeyValueDSN reports a PostgreSQL key=value connection string,
// which would otherwise be taken for a file name.
func looksLikeKeyValueDSN(s string) bool {
	return !state.IsURL(s) && (strings.Contains(s, "host=") || strings.Contains(s, "dbname="))
}

// sameStore reports whether two configured states are obviously one.
func sameStore(a, b string) bool {
	if state.IsURL(a) || state.IsURL(b) {
		return a == b
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

// exportStorage is a state engine that can export (both can).
type exportStorage interface {
	state.Storage
	state.Exporter
}

// openSource opens the source read-only.
func openSource(ctx context.Context, from string) (exportStorage, error) {
	if !state.IsURL(from) {
		if _, err := os.Stat(from); err != nil {
			return nil, &ExitError{Code: 1, Err: fmt.Errorf("source state file: %w", err)}
		}
	}
	st, err := app.OpenState(ctx, from, true)
	if errors.Is(err, state.ErrLocked) {
		return nil, inUse("source", from, "migrate")
	}
	if err != nil {
		return nil, fmt.Errorf("open the source: %w", err)
	}
	if err := checkNoHolders(ctx, st, "source", from); err != nil {
		_ = st.Close()
		return nil, err
	}
	return asExporter(st)
}

// holderLister is a state shared by replicas (PostgreSQL): it lists the
// flows' leases that have not run out.
type holderLister interface {
	Holders(ctx context.Context) ([]state.Holder, error)
}

// checkNoHolders refuses a shared state that a running replica holds a
// lease on: it is writing meanwhile (a PostgreSQL state takes no file
// lock).
func checkNoHolders(ctx context.Context, st state.Storage, role, name string) error {
	hl, ok := st.(holderLister)
	if !ok {
		return nil
	}
	hs, err := hl.Holders(ctx)
	if err != nil {
		return fmt.Errorf("read the %s's leases: %w", role, err)
	}
	if len(hs) == 0 {
		return nil
	}
	return &ExitError{Code: 1, Err: fmt.Errorf("the %s %s is in use: replica %s holds the lease on flow %s (until %s); stop every replica, then migrate again",
		role, state.Describe(name), hs[0].Replica, hs[0].Flow, hs[0].Expires.UTC().Format(time.RFC3339))}
}

// inUse is the error for a state file another process holds.
func inUse(role, path, what string) error {
	return &ExitError{Code: 1, Err: &inUseError{msg: fmt.Sprintf("the %s %s is in use by another crmsync process (a running daemon?): stop it, then %s again",
		role, state.Describe(path), what)}}
}

// inUseError says which file is held; it matches state.ErrLocked.
type inUseError struct{ msg string }

func (e *inUseError) Error() string { return e.msg }
func (e *inUseError) Unwrap() error { return state.ErrLocked }

func asExporter(st state.Storage) (exportStorage, error) {
	x, ok := st.(exportStorage)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("state engine %T cannot export", st)
	}
	return x, nil
}

// holdings says what a store holds ("records 3, links 9"), or "" when it
// holds nothing.
func holdings(st state.Storage) (string, error) {
	stats, err := st.Stats()
	if err != nil {
		return "", fmt.Errorf("read the destination: %w", err)
	}
	var parts []string
	for _, k := range state.CopiedKinds() {
		if n := stats[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", "), nil
}

func copyAndVerify(ctx context.Context, progressOut io.Writer, src exportStorage, dst state.Storage, f migrateFlags, held bool, res *migrateResult) error {
	dx, err := asExporter(dst)
	if err != nil {
		return err
	}
	p := &progress{w: progressOut, every: time.Second, last: time.Now()}
	counts, err := state.Copy(ctx, src, dst, f.batch, p.show)
	res.Counts = counts
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w (the destination holds a partial copy: run again with --force, or remove it)",
			res.From, res.To, err)
	}
	res.Verified, res.Extra, err = verify(ctx, src, dx, f, held)
	return err
}

func verify(ctx context.Context, src, dst state.Exporter, f migrateFlags, held bool) (int, int, error) {
	o := state.CompareOptions{Resolution: time.Nanosecond, ExtraOK: f.force && held}
	if state.IsURL(f.from) || state.IsURL(f.to) {
		o.Resolution = time.Microsecond // what PostgreSQL keeps
	}
	cr, err := state.CompareExports(ctx, src, dst, o)
	var m *state.MismatchError
	if errors.As(err, &m) {
		return cr.Compared, cr.Extra, fmt.Errorf("verify: the destination differs from the source at %s: %s", m.Key, m.Problem)
	}
	if err != nil {
		return cr.Compared, cr.Extra, fmt.Errorf("verify: %w", err)
	}
	return cr.Compared, cr.Extra, nil
}

// progress prints the counts so far, at most once per every (so a copy
// that takes less than that prints nothing but its summary).
type progress struct {
	w     io.Writer
	every time.Duration
	last  time.Time
}

func (p *progress) show(counts map[string]int) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "copied so far: %s\n", countLine(counts))
}

func countLine(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for _, k := range state.CopiedKinds() {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

func printMigrate(w io.Writer, r migrateResult) error {
	fmt.Fprintf(w, "copied %s to %s\n", r.From, r.To)
	for _, k := range state.CopiedKinds() {
		fmt.Fprintf(w, "  %-13s %9d\n", k, r.Counts[k])
	}
	fmt.Fprintf(w, "verified: the destination holds exactly what the source does (%d entries compared)\n", r.Verified)
	if r.Extra > 0 {
		fmt.Fprintf(w, "the destination also holds %d entries the source does not (it held state before: --force)\n", r.Extra)
	}
	return nil
}

func newStateCompactCmd(g *globals) *cobra.Command {
	var path, cfgPath string
	var jsonOut bool
	c := &cobra.Command{
		Use:   "compact [--state FILE | --config FILE]",
		Short: "Rewrite the bbolt state file without its free pages, to give disk space back",
		Long: `A bbolt file never shrinks by itself: pages freed by deleted or rewritten entries
are reused but kept. compact copies the file into a new one next to it, checks
the copy, and renames it over the original. Stop the daemon first (a file in
use is refused). A crash meanwhile leaves the original intact.

For PostgreSQL state, VACUUM does this (autovacuum runs it; VACUUM FULL gives
the space back to the operating system).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := compactPath(g, path, cfgPath)
			if err != nil {
				return err
			}
			return runCompact(cmd.Context(), g.env.Stdout, p, jsonOut)
		},
	}
	c.Flags().StringVar(&path, "state", "", "the state file (default: the --config's state)")
	c.Flags().StringVarP(&cfgPath, "config", "c", "", "configuration file whose state to compact")
	c.Flags().BoolVar(&jsonOut, "json", false, "print the sizes as JSON")
	_ = c.MarkFlagFilename("state")
	return c
}

// compactPath is --state, else the config's state.
func compactPath(g *globals, path, cfgPath string) (string, error) {
	if path != "" {
		return path, nil
	}
	if cfgPath == "" {
		return "", &ExitError{Code: 2, Err: errors.New("give the state file with --state FILE, or the configuration with --config")}
	}
	g.config = cfgPath
	cfg, err := g.loadConfig()
	if err != nil {
		return "", err
	}
	return cfg.State, nil
}

func runCompact(ctx context.Context, w io.Writer, path string, jsonOut bool) error {
	if state.IsURL(path) {
		return &ExitError{Code: 1, Err: fmt.Errorf("state %s is a PostgreSQL database: compact is for bbolt files; PostgreSQL's VACUUM does this (autovacuum runs it; VACUUM FULL returns the space to the operating system)",
			state.Describe(path))}
	}
	res, err := state.Compact(ctx, path, state.Options{Timeout: time.Second})
	if errors.Is(err, state.ErrLocked) {
		return inUse("state file", path, "compact")
	}
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSON(w, map[string]any{"state": path, "before_bytes": res.Before, "after_bytes": res.After})
	}
	fmt.Fprintf(w, "compacted %s: %s before, %s after\n", path, humanBytes(res.Before), humanBytes(res.After))
	return nil
}

// humanBytes writes n as bytes, KiB, MiB or GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}
