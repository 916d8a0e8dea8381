package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/emulate"
	"github.com/crmsync/crmsync/logkey"
)

func newEmulateCmd(g *globals) *cobra.Command {
	o := emulate.Options{Types: g.env.Types, Addrs: map[string]string{}, Seeds: map[string]int{}, Params: map[string]map[string]string{}}
	var f emukit.Faults
	var jsonOut bool
	types := g.env.Types.Types()
	seeds := make([]int, len(types))
	addrs := make([]string, len(types))
	params := map[string]map[string]*string{}
	c := &cobra.Command{
		Use:   "emulate",
		Short: "Serve emulators of the TribeCRM, Overplane and BlueRockTel APIs on loopback until SIGTERM",
		Long: `Serve faithful emulators of the CRM APIs, seeded with --seed realistic
records each (the same --seed always gives the same records). Every emulator
checks "Authorization: Bearer <token>" and can be read and changed with any
HTTP client, e.g.:

  curl -H 'Authorization: Bearer dev-token' \
    'http://127.0.0.1:8081/v1/odata/Relationship_Organization_CommercialRelationship_Lead?$top=2&$expand=Organization'
  curl -H 'Authorization: Bearer dev-token' 'http://127.0.0.1:8082/api/crm/prospect?limit=2'
  curl -H 'Authorization: Bearer dev-token' -H 'Accept: application/json' 'http://127.0.0.1:8083/api/v1/prospects?per_page=2'

Each system type has --TYPE-addr, --TYPE-seed (default --seed) and its own
knobs (--bluerocktel-naming). Fault flags inject latency, 5xx answers, 429
rate limiting with Retry-After, connection resets, 401s, 200s with an error
body, hangs, answers lost or replaced by a 504 after the request was carried
out, a page-size cap, many records on one timestamp (--ties) and records
edited while a client pages (--edit-during-paging).

Every emulator answers GET /_emulate/stats with the requests it has served
({"requests": …, "reads": …, "writes": …}; writes are the non-GET ones):
"crmsync bench" counts requests per record with it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := g.logger(nil)
			o.Faults = f
			for i, t := range types {
				o.Addrs[t.Name] = addrs[i]
				if cmd.Flags().Changed(t.Name + "-seed") {
					o.Seeds[t.Name] = seeds[i]
				}
				for k, v := range params[t.Name] {
					if cmd.Flags().Changed(t.Name + "-" + k) {
						if o.Params[t.Name] == nil {
							o.Params[t.Name] = map[string]string{}
						}
						o.Params[t.Name][k] = *v
					}
				}
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			s, err := emulate.Start(ctx, o)
			if err != nil {
				return err
			}
			for _, t := range types {
				records := o.Seed
				if n, ok := o.Seeds[t.Name]; ok {
					records = n
				}
				log.Info().Str(logkey.System, t.Name).Str("url", s.URLs[t.Name]).Int("records", records).Msg("emulator listening")
				if !jsonOut {
					fmt.Fprintf(g.env.Stdout, "%-11s %s\n", t.Name, s.URLs[t.Name])
				}
			}
			if jsonOut {
				// One line, so a script can read it as soon as it appears.
				b, err := json.Marshal(map[string]any{"urls": s.URLs})
				if err != nil {
					return err
				}
				fmt.Fprintln(g.env.Stdout, string(b))
			}
			<-ctx.Done()
			s.Close()
			log.Info().Msg("emulators stopped")
			return nil
		},
	}
	for i, t := range types {
		c.Flags().StringVar(&addrs[i], t.Name+"-addr", t.Emulator.Addr, t.Title+" emulator address")
		c.Flags().IntVar(&seeds[i], t.Name+"-seed", 0, "records seeded in "+t.Title+" (default: --seed)")
		params[t.Name] = map[string]*string{}
		for _, k := range slices.Sorted(maps.Keys(t.Emulator.Params)) {
			v := new(string)
			params[t.Name][k] = v
			c.Flags().StringVar(v, t.Name+"-"+k, "", t.Title+": "+t.Emulator.Params[k])
		}
	}
	c.Flags().BoolVar(&jsonOut, "json", false, `print the URLs as one JSON line ({"urls": {"tribecrm": "http://…", …}})`)
	c.Flags().StringVar(&o.Token, "token", "dev-token", "bearer token every emulator accepts")
	c.Flags().IntVar(&o.Seed, "seed", 100, "records seeded per system (deterministic)")
	c.Flags().IntVar(&o.PageCap, "page-cap", 0, "server-side cap on page size (0: each API's default)")
	c.Flags().BoolVar(&o.Ties, "ties", false, "many records on one timestamp: seeds share one, and every write gets it")
	c.Flags().IntVar(&o.EditDuringPaging, "edit-during-paging", 0, "edit this many records after every list page served (0: off)")
	c.Flags().DurationVar(&f.Latency, "latency", 0, "latency added to every answer")
	c.Flags().Float64Var(&f.ErrorRate, "error-rate", 0, "share of requests answered with 503 (0..1)")
	c.Flags().IntVar(&f.RateLimit, "rate-limit", 0, "answer 429 past this many requests per second (0: off)")
	c.Flags().DurationVar(&f.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429")
	c.Flags().Float64Var(&f.ResetRate, "reset-rate", 0, "share of connections cut without an answer (0..1)")
	c.Flags().Float64Var(&f.AuthErrorRate, "auth-error-rate", 0, "share of requests refused with 401 (0..1)")
	c.Flags().Float64Var(&f.BodyErrorRate, "body-error-rate", 0, "share of requests answered 200 with an error body instead of the resource (0..1)")
	c.Flags().Float64Var(&f.HangRate, "hang-rate", 0, "share of requests left unanswered until the client gives up (0..1)")
	c.Flags().DurationVar(&f.HangFor, "hang-for", 30*time.Second, "how long a hung request waits before its connection is cut")
	c.Flags().Float64Var(&f.ActedResetRate, "acted-reset-rate", 0, "share of requests carried out whose answer is then lost (connection cut) (0..1)")
	c.Flags().Float64Var(&f.ActedErrorRate, "acted-error-rate", 0, "share of requests carried out and then answered 504 (0..1)")
	c.Flags().Uint64Var(&f.Seed, "fault-seed", 1, "seed of the fault sequence (the same seed and request order give the same faults)")
	return c
}
