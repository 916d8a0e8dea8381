package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/emulate"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
)

func newDemoCmd(g *globals) *cobra.Command {
	var seed int
	var keep, jsonOut bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start the emulators in-process and run the example flows with a fresh state file",
		Long: `A self-contained tour, no network beyond loopback: starts the emulators
on free loopback ports, writes config.example.yaml and its mappings to a
temporary directory, then
  1. syncs the example flows (records are created in the targets),
  2. syncs again with nothing changed (zero writes),
  3. renames one organisation in the first flow's source (TribeCRM) through
     its API and syncs (exactly one update in each target that holds it),
and prints what was synced.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), g, seed, keep, jsonOut)
		},
	}
	c.Flags().IntVar(&seed, "seed", 50, "records seeded per system")
	c.Flags().BoolVar(&jsonOut, "json", false, "print the three steps' results as one JSON document instead of tables")
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, mappings, state) for inspection")
	return c
}

func runDemo(ctx context.Context, g *globals, seed int, keep, jsonOut bool) error {
	if g.env.Assets == nil {
		return fmt.Errorf("demo assets are not embedded in this build")
	}
	out := g.env.Stdout
	type stepJSON struct {
		Title string                    `json:"title"`
		Flows map[string]*engine.Result `json:"flows"`
	}
	var steps []stepJSON
	if jsonOut {
		defer func() { _ = writeJSON(g.env.Stdout, map[string]any{"steps": steps}) }()
		out = io.Discard
	}
	dir, err := os.MkdirTemp("", "crmsync-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	if err := fs.WalkDir(g.env.Assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(g.env.Assets, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	}); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.example.yaml")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	types := g.env.Types
	// The example config reads each system's URL from <TYPE>_URL. A first
	// read (default URLs) says which types are sources: those emulators are
	// seeded, the targets start empty.
	env := map[string]string{"CRMSYNC_STATE": filepath.Join(dir, "crmsync.db")}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	first, err := config.Parse(cfgPath, data, lookup, types)
	if err != nil {
		return err
	}
	seeds := map[string]int{}
	for _, t := range types.Names() {
		seeds[t] = 0
	}
	for _, f := range first.Flows {
		seeds[first.Systems[f.Source].Type] = seed
	}
	srv, err := emulate.Start(ctx, emulate.Options{Types: types, Addr: "127.0.0.1:0", Seeds: seeds})
	if err != nil {
		return err
	}
	defer srv.Close()
	for t, u := range srv.URLs {
		env[strings.ToUpper(t)+"_URL"] = u
	}
	cfg, err := config.Parse(cfgPath, data, lookup, types)
	if err != nil {
		return err
	}
	log := g.logger(cfg)
	if g.logLevel == "" {
		log = log.Level(warnLevel)
	}
	a, err := app.Open(cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	flows, _ := app.Flows(cfg, nil)
	if len(flows) == 0 {
		return fmt.Errorf("%s has no flows", cfgPath)
	}
	var where []string
	for _, t := range types.Types() {
		where = append(where, fmt.Sprintf("%s (%s)", srv.URLs[t.Name], t.Name))
	}
	src := a.Systems[flows[0].Source]
	srcTitle := systemTitle(types, cfg.Systems[src.Name].Type)
	fmt.Fprintf(out, "crmsync demo: emulators on %s\n", strings.Join(where, ", "))
	fmt.Fprintf(out, "%s seeded with %d funnel records; state file %s\n\n", srcTitle, seed, cfg.State)
	step := func(title string) error {
		fmt.Fprintf(out, "== %s\n", title)
		var results []*engine.Result
		st := stepJSON{Title: title, Flows: map[string]*engine.Result{}}
		defer func() { steps = append(steps, st) }()
		for _, f := range flows {
			res, err := a.Engine.Run(ctx, f, engine.RunOptions{Mode: engine.ModeSync})
			results = append(results, res)
			st.Flows[f.Name] = res
			if err != nil {
				writeSummary(out, results)
				return err
			}
		}
		writeSummary(out, results)
		fmt.Fprintln(out)
		return nil
	}
	if err := step(fmt.Sprintf("1. first sync: %s records are created in the other systems", srcTitle)); err != nil {
		return err
	}
	if err := step("2. second sync, nothing changed: zero writes"); err != nil {
		return err
	}
	name, err := demoEdit(ctx, src)
	if err != nil {
		return fmt.Errorf("edit a record in the %s emulator: %w", srcTitle, err)
	}
	if err := step(fmt.Sprintf("3. renamed an organisation in %s to %q: one update per target", srcTitle, name)); err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "kept %s (config, mappings, state); try: crmsync status --config %s\n", dir, cfgPath)
	}
	return nil
}

// systemTitle is the vendor's name of a system type.
func systemTitle(types *connectors.Registry, name string) string {
	if t, ok := types.Lookup(name); ok && t.Title != "" {
		return t.Title
	}
	return name
}

// demoEdit renames one organisation in sys through its own connector, as a
// user would in that CRM, and returns the new name: the first organisation
// of the first page, its name changed in canonical form and written back as
// the native fields the mapping gives for it.
func demoEdit(ctx context.Context, sys *engine.System) (string, error) {
	page, err := sys.Conn.Pull(ctx, nil, connectors.PullOptions{})
	if err != nil {
		return "", err
	}
	for _, r := range page.Records {
		rec, err := sys.Map.Inbound(mapping.Native{Entity: r.Entity, Fields: r.Fields})
		if err != nil || rec.Kind() != funnel.Organization || rec.Str(funnel.FieldName) == "" {
			continue
		}
		before, err := sys.Map.Outbound(rec)
		if err != nil {
			return "", err
		}
		name := rec.Str(funnel.FieldName) + " Group"
		rec.Fields[funnel.FieldName] = name
		after, err := sys.Map.Outbound(rec)
		if err != nil {
			return "", err
		}
		if _, err := sys.Conn.Update(ctx, r.Entity, r.ID, engine.DiffPayload(before.Fields, after.Fields)); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("no organisation found to rename on the first page")
}
