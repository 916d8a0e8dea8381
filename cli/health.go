package cli

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// newHealthCmd asks a running daemon's admin endpoint whether it is alive
// (or ready), for container health checks and exec probes where the image
// has no curl (the distroless base has no shell either).
func newHealthCmd(g *globals) *cobra.Command {
	var admin string
	var ready bool
	c := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when a running daemon's admin endpoint answers /healthz (or /readyz with --ready)",
		Long: `Ask a running "crmsync run" on its admin endpoint: GET /healthz (alive) or, with
--ready, GET /readyz (every flow's last run succeeded). Exit status 0 when it
answers 200, 1 otherwise, with the reason on stderr. Made for Docker's
HEALTHCHECK and Kubernetes exec probes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/healthz"
			if ready {
				path = "/readyz"
			}
			status, body, err := adminGet(cmd.Context(), admin, path)
			if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("admin endpoint %s: %w", admin, err)}
			}
			if status != http.StatusOK {
				return &ExitError{Code: 1, Err: fmt.Errorf("admin endpoint %s%s: %d %s: %s", admin, path, status, http.StatusText(status), strings.TrimSpace(string(body)))}
			}
			fmt.Fprintln(g.env.Stdout, strings.TrimSpace(string(body)))
			return nil
		},
	}
	c.Flags().StringVar(&admin, "admin", "127.0.0.1:9090", "the daemon's admin address")
	c.Flags().BoolVar(&ready, "ready", false, "ask /readyz instead of /healthz")
	return c
}
