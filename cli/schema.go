package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/schema"
)

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:       "schema config|mapping",
		Short:     "Print the JSON Schema of the configuration file or of a mapping file, for editors that check YAML as you type",
		ValidArgs: []string{"config", "mapping"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		Long: `Print the JSON Schema (draft 2020-12) of the configuration file (every key,
its type and allowed values, and the keys of each system type) or of a
mapping file (rule keys, canonical fields, directions, types, transforms).
Save it and point your editor at it, e.g. with the YAML language server
(VS Code's YAML extension, Neovim, Helix) as the first line of the file:

  crmsync schema config > crmsync.schema.json
  # yaml-language-server: $schema=crmsync.schema.json
  crmsync schema mapping > mapping.schema.json

The schema checks the shape; crmsync validate --config F checks everything
(files, flows, cron expressions, mapping rules) and names file:line.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			build := schema.Config
			if args[0] == "mapping" {
				build = schema.Mapping
			}
			data, err := build(g.env.Types)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.env.Stdout, string(data))
			return err
		},
	}
}
