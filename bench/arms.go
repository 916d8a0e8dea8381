package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// engineArm measures crmsync's first backfill of n records into empty
// targets, the state file it leaves, and a second backfill with nothing
// changed, on fresh emulators; the state is removed after.
func engineArm(ctx context.Context, o Options, w *workdir, n int, s *sample) error {
	emu, err := startEmulators(ctx, o.Exe, o.Addr, n, w.systems)
	if err != nil {
		return err
	}
	defer emu.stop()
	stateDir, err := os.MkdirTemp(w.dir, "state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	state := filepath.Join(stateDir, "crmsync.db")
	fmt.Fprintf(o.Progress, "%d records: crmsync backfill\n", n)
	first, writes, err := backfill(ctx, o, w, emu, state, n, o.profileArgs("engine", n)...)
	if err != nil {
		return err
	}
	s.engine, s.writes = first, writes
	fi, err := os.Stat(state)
	if err != nil {
		return err
	}
	s.stateBytes = fi.Size()
	fmt.Fprintf(o.Progress, "%d records: crmsync backfill again, nothing changed\n", n)
	s.rerun, _, err = backfill(ctx, o, w, emu, state, n)
	if err != nil {
		return err
	}
	if s.rerun.Synced != 0 || s.rerun.Writes != 0 {
		return fmt.Errorf("the unchanged re-run wrote: %d writes counted by crmsync, %d non-GET requests served", s.rerun.Synced, s.rerun.Writes)
	}
	return nil
}

// backfill runs `crmsync backfill` once and measures it; it also returns
// the records created in the targets.
func backfill(ctx context.Context, o Options, w *workdir, emu *emulators, state string, n int, extra ...string) (Measure, int, error) {
	before, err := emu.stats(ctx)
	if err != nil {
		return Measure{}, 0, err
	}
	args := append([]string{"backfill", Flow, "--config", w.config, "--state", state, "--json", "--log-level", "warn"}, extra...)
	c, err := runChild(ctx, o.Exe, emu.env(), args...)
	if err != nil {
		return Measure{}, 0, err
	}
	after, err := emu.stats(ctx)
	if err != nil {
		return Measure{}, 0, err
	}
	synced, created, err := engineWrites(c.stdout)
	if err != nil {
		return Measure{}, 0, err
	}
	return measure(c, after.Sub(before), n, synced), created, nil
}

// engineResult is what the bench reads of `crmsync backfill --json`.
type engineResult struct {
	Flows map[string]struct {
		Error   string `json:"error"`
		Systems map[string]struct {
			Created, Updated, Converted, Failed int
		} `json:"systems"`
	} `json:"flows"`
}

// engineWrites returns the writes (created, updated, converted) and the
// creates a backfill's JSON result counts over all systems.
func engineWrites(out []byte) (writes, created int, err error) {
	var r engineResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, 0, fmt.Errorf("read crmsync's JSON result: %w", err)
	}
	f, ok := r.Flows[Flow]
	if !ok {
		return 0, 0, fmt.Errorf("crmsync's JSON result has no flow %s", Flow)
	}
	if f.Error != "" {
		return 0, 0, fmt.Errorf("crmsync backfill: %s", f.Error)
	}
	for name, c := range f.Systems {
		if c.Failed > 0 {
			return 0, 0, fmt.Errorf("crmsync backfill: %d records failed in %s", c.Failed, name)
		}
		writes += c.Created + c.Updated + c.Converted
		created += c.Created
	}
	return writes, created, nil
}

// plainArm measures the plain loop doing the first backfill's job on fresh
// emulators.
func plainArm(ctx context.Context, o Options, w *workdir, n int, s *sample) error {
	emu, err := startEmulators(ctx, o.Exe, o.Addr, n, w.systems)
	if err != nil {
		return err
	}
	defer emu.stop()
	fmt.Fprintf(o.Progress, "%d records: plain loop\n", n)
	before, err := emu.stats(ctx)
	if err != nil {
		return err
	}
	args := append([]string{"bench", "plain-loop", "--config", w.config, "--flow", Flow}, o.profileArgs("plain", n)...)
	c, err := runChild(ctx, o.Exe, emu.env(), args...)
	if err != nil {
		return err
	}
	after, err := emu.stats(ctx)
	if err != nil {
		return err
	}
	var out PlainResult
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return fmt.Errorf("read the plain loop's result %q: %w", c.stdout, err)
	}
	s.plain = measure(c, after.Sub(before), n, out.Created)
	return nil
}

// PlainResult is what `crmsync bench plain-loop` prints (one JSON object).
type PlainResult struct {
	Created int `json:"created"`
}

// ceilingArm measures the targets' raw create ceiling: on fresh emulators
// whose source holds min(n, ceilingMax) records, `crmsync bench
// create-ceiling` pulls and maps them all, then POSTs them at the flow's
// write_concurrency and nothing else, timing the POSTs only.
func ceilingArm(ctx context.Context, o Options, w *workdir, n int, s *sample) error {
	emu, err := startEmulators(ctx, o.Exe, o.Addr, min(n, ceilingMax), w.systems)
	if err != nil {
		return err
	}
	defer emu.stop()
	fmt.Fprintf(o.Progress, "%d records: create ceiling\n", n)
	c, err := runChild(ctx, o.Exe, emu.env(), "bench", "create-ceiling", "--config", w.config, "--flow", Flow)
	if err != nil {
		return err
	}
	var out CeilingResult
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return fmt.Errorf("read the create ceiling's result %q: %w", c.stdout, err)
	}
	if out.Seconds > 0 {
		s.ceiling = Ceiling{Created: out.Created, Seconds: out.Seconds, CreatesPerSecond: round(float64(out.Created)/out.Seconds, 1)}
	}
	return nil
}

// ceilingMax bounds the records the create ceiling sends: it holds them all
// in memory before it starts the clock (about 1 KB each), and a rate of
// creates needs no more than 100,000 to settle.
const ceilingMax = 100_000
