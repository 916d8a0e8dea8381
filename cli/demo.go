package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/emulate"
	"github.com/crmsync/crmsync/engine"
)

func newDemoCmd(g *globals) *cobra.Command {
	var seed int
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Start the emulators in-process and run the example flows with a fresh state file",
		Long: `A self-contained tour, no network beyond loopback: starts the three emulators
on free loopback ports, writes config.example.yaml and its mappings to a
temporary directory, then
  1. syncs the example flows (records are created in the targets),
  2. syncs again with nothing changed (zero writes),
  3. renames one organisation in TribeCRM through its API and syncs
     (exactly one update in each target that holds it),
and prints what was synced.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), g, seed, keep)
		},
	}
	c.Flags().IntVar(&seed, "seed", 50, "records seeded per system")
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (config, mappings, state) for inspection")
	return c
}

func runDemo(ctx context.Context, g *globals, seed int, keep bool) error {
	if g.env.Assets == nil {
		return fmt.Errorf("demo assets are not embedded in this build")
	}
	out := g.env.Stdout
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
	none := 0
	srv, err := emulate.Start(ctx, emulate.Options{TribeCRMAddr: "127.0.0.1:0", OverplaneAddr: "127.0.0.1:0", BlueRockTelAddr: "127.0.0.1:0", Seed: seed, SeedOthers: &none})
	if err != nil {
		return err
	}
	defer srv.Close()
	cfgPath := filepath.Join(dir, "config.example.yaml")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	env := map[string]string{
		"TRIBECRM_URL":    srv.URLs["tribecrm"],
		"OVERPLANE_URL":   srv.URLs["overplane"],
		"BLUEROCKTEL_URL": srv.URLs["bluerocktel"],
		"CRMSYNC_STATE":   filepath.Join(dir, "crmsync.db"),
	}
	cfg, err := config.Parse(cfgPath, data, func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return "", false
	})
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
	fmt.Fprintf(out, "crmsync demo: emulators on %s (tribecrm), %s (overplane), %s (bluerocktel)\n", srv.URLs["tribecrm"], srv.URLs["overplane"], srv.URLs["bluerocktel"])
	fmt.Fprintf(out, "TribeCRM seeded with %d funnel records; state file %s\n\n", seed, cfg.State)
	step := func(title string) error {
		fmt.Fprintf(out, "== %s\n", title)
		var results []*engine.Result
		for _, f := range flows {
			res, err := a.Engine.Run(ctx, f, engine.RunOptions{Mode: engine.ModeSync})
			results = append(results, res)
			if err != nil {
				writeSummary(out, results)
				return err
			}
		}
		writeSummary(out, results)
		fmt.Fprintln(out)
		return nil
	}
	if err := step("1. first sync: TribeCRM records are created in Overplane and BlueRockTel"); err != nil {
		return err
	}
	if err := step("2. second sync, nothing changed: zero writes"); err != nil {
		return err
	}
	name, err := demoEdit(ctx, srv)
	if err != nil {
		return fmt.Errorf("edit a record in the TribeCRM emulator: %w", err)
	}
	if err := step(fmt.Sprintf("3. renamed an organisation in TribeCRM to %q: one update per target", name)); err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "kept %s (config, mappings, state); try: crmsync status --config %s\n", dir, cfgPath)
	}
	return nil
}

// demoEdit renames one TribeCRM organisation through the emulator's own
// OData API, as a user (or curl) would, and returns the new name.
func demoEdit(ctx context.Context, srv *emulate.Servers) (string, error) {
	base := srv.URLs["tribecrm"] + "/v1/odata/"
	do := func(method, url string, body any, out any) error {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer dev-token")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	for _, stage := range []string{"Lead", "Suspect", "HotProspect", "Prospect", "Customer"} {
		var list struct {
			Value []struct {
				Organization struct {
					ID   string
					Name string
				}
			} `json:"value"`
		}
		set := "Relationship_Organization_CommercialRelationship_" + stage
		if err := do("GET", base+set+"?$top=1&$orderby=CreationDate%20asc&$expand=Organization", nil, &list); err != nil {
			return "", err
		}
		if len(list.Value) == 0 {
			continue
		}
		org := list.Value[0].Organization
		name := org.Name + " Group"
		if err := do("PUT", base+"Relation_Organization("+org.ID+")", map[string]string{"Name": name}, nil); err != nil {
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("no organisation found to rename")
}
