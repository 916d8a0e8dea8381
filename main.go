// Command crmsync keeps the sales funnels of TribeCRM, Overplane and
// BlueRockTel in sync. See README.md, docs/ and `crmsync --help`.
package main

import (
	"context"
	"embed"
	"os"

	"github.com/crmsync/crmsync/cli"
	"github.com/crmsync/crmsync/connectors/builtin"
)

// assets are what `crmsync demo` needs to run from the binary alone.
//
//go:embed config.example.yaml examples/mappings/*.yaml
var assets embed.FS

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Assets: assets, Types: builtin.Registry()}))
}
