package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/mapping"
)

func newMappingCmd(g *globals) *cobra.Command {
	root := &cobra.Command{Use: "mapping", Short: "Work with mapping files"}
	var system, input, entity string
	test := &cobra.Command{
		Use:   "test",
		Short: "Apply a system's mapping to a sample native record: canonical result, and back",
		Long: `Read a native record (JSON, as the API returns it) from --input, map it to the
canonical model with the system's mapping, print the result, then map that
back to the system's native form and print it. Every problem is listed with
the mapping's file:line. The record's entity (TribeCRM entity set,
"prospects", ...) comes from --entity or an "@entity" key in the JSON.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			sc, ok := cfg.Systems[system]
			if !ok {
				return &ExitError{Code: 2, Err: fmt.Errorf("--system %q is not configured (configured: %v)", system, cfg.SystemNames())}
			}
			m, err := mapping.Load(sc.Mapping)
			if err != nil {
				fmt.Fprintln(g.env.Stdout, err)
				return &ExitError{Code: 1}
			}
			data, err := os.ReadFile(input)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			var fields map[string]any
			if err := json.Unmarshal(data, &fields); err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("%s: not a JSON object: %w", input, err)}
			}
			if e, ok := fields["@entity"].(string); ok && entity == "" {
				entity = e
			}
			delete(fields, "@entity")
			out := map[string]any{"system": system, "mapping": sc.Mapping, "entity": entity}
			failed := false
			rec, err := m.Inbound(mapping.Native{Entity: entity, Fields: fields})
			if err != nil {
				failed = true
				out["inbound_errors"] = err.Error()
			} else {
				out["canonical"] = rec.Fields
				back, err := m.Outbound(rec)
				if err != nil {
					failed = true
					out["outbound_errors"] = err.Error()
				} else {
					out["native"] = map[string]any{"entity": back.Entity, "fields": back.Fields}
				}
			}
			if g.jsonOut {
				if err := writeJSON(g.env.Stdout, out); err != nil {
					return err
				}
			} else {
				w := g.env.Stdout
				fmt.Fprintf(w, "mapping %s (system %s), input %s, entity %q\n\n", sc.Mapping, system, input, entity)
				if e, ok := out["inbound_errors"]; ok {
					fmt.Fprintf(w, "inbound (native -> canonical) failed:\n%s\n", e)
				} else {
					fmt.Fprintln(w, "canonical:")
					_ = writeJSON(w, out["canonical"])
					if e, ok := out["outbound_errors"]; ok {
						fmt.Fprintf(w, "\noutbound (canonical -> native) failed:\n%s\n", e)
					} else {
						fmt.Fprintln(w, "\nback to native:")
						_ = writeJSON(w, out["native"])
					}
				}
			}
			if failed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	g.addConfigFlags(test, false)
	test.Flags().StringVar(&system, "system", "", "configured system whose mapping to apply (required)")
	test.Flags().StringVar(&input, "input", "", "JSON file with one native record (required)")
	test.Flags().StringVar(&entity, "entity", "", "the record's entity, e.g. Relationship_Organization_CommercialRelationship_Lead")
	test.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	_ = test.MarkFlagRequired("system")
	_ = test.MarkFlagRequired("input")
	root.AddCommand(test)
	return root
}
