package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/emulate/emutest"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// The tests in this package drive the engine the way crmsync does: the three
// emulators serve their APIs on loopback, a YAML configuration (with the
// example mappings copied next to it) is parsed by package config and turned
// into systems by app.BuildSystems, and state lives in a bbolt file in the
// test's temporary directory. What a user would see is checked through the
// emulators' APIs (and their test helpers, which read the same store).

const devToken = "dev-token"

// worldOpts configures newWorld.
type worldOpts struct {
	tribe  int // TribeCRM records seeded
	others int // Overplane and BlueRockTel records seeded
	// flows is the YAML of the config's flows: list (indented by two).
	flows string
	// mappings replaces an example mapping (by file name, e.g.
	// "bluerocktel.yaml") with this content.
	mappings map[string]string
	pageSize int
	// wrap replaces a system's connector after it is built (fault tests).
	wrap map[string]func(connectors.Connector) connectors.Connector
	now  func() time.Time
	// concurrency is the write_concurrency given to flows that set none
	// (default 4, as in config.example.yaml).
	concurrency int
}

// world is one running setup: emulators, configuration, systems, state and
// engine, plus API clients acting as the CRMs' human users.
type world struct {
	t         *testing.T
	ctx       context.Context
	o         worldOpts
	srv       *emutest.Servers
	dir       string
	cfgPath   string
	statePath string
	cfg       *config.Config
	sys       map[string]*engine.System
	st        *state.Store
	eng       *engine.Engine

	tribe *tribecrm.Client
	brt   *bluerocktel.Client
	op    *overplane.Client
}

// configYAML is the test configuration: the three systems without rate
// limits, and the flows the test asks for.
func configYAML(pageSize int, flows string) string {
	var b strings.Builder
	b.WriteString("state: state.db\nlog:\n  level: warn\nsystems:\n")
	for _, s := range []string{"tribecrm", "overplane", "bluerocktel"} {
		fmt.Fprintf(&b, "  %s:\n    type: %s\n    base_url: ${%s_URL}\n    token: %s\n    mapping: mappings/%s.yaml\n    page_size: %d\n    rate_limit: 0\n    retries: 2\n",
			s, s, strings.ToUpper(s), devToken, s, pageSize)
	}
	b.WriteString("flows:\n")
	b.WriteString(flows)
	return b.String()
}

// withConcurrency adds write_concurrency: n to every flow that sets none.
func withConcurrency(flows string, n int) string {
	var out []string
	chunks := strings.Split(flows, "\n  - name:")
	for i, c := range chunks {
		if i > 0 && !strings.Contains(c, "write_concurrency:") {
			line, rest, _ := strings.Cut(c, "\n")
			c = line + "\n    write_concurrency: " + strconv.Itoa(n) + "\n" + rest
		}
		out = append(out, c)
	}
	return strings.Join(out, "\n  - name:")
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	if o.pageSize == 0 {
		o.pageSize = 25
	}
	if o.concurrency == 0 {
		o.concurrency = 4 // the example's default
	}
	o.flows = withConcurrency(o.flows, o.concurrency)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	others := o.others
	srv, err := emutest.Start(ctx, emutest.Options{
		Token: devToken, Seed: o.tribe, SeedOthers: &others})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	copyMappings(t, dir, o.mappings)
	w := &world{t: t, ctx: ctx, o: o, srv: srv, dir: dir, cfgPath: filepath.Join(dir, "crmsync.yaml")}
	if err := os.WriteFile(w.cfgPath, []byte(configYAML(o.pageSize, o.flows)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.cfg, err = config.Parse(w.cfgPath, []byte(configYAML(o.pageSize, o.flows)), w.lookup, builtin.Registry())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	w.statePath = w.cfg.State
	w.sys, err = app.BuildSystems(w.cfg, zerolog.Nop(), nil)
	if err != nil {
		t.Fatalf("build systems: %v", err)
	}
	for name, wr := range o.wrap {
		w.sys[name].Conn = wr(w.sys[name].Conn)
	}
	w.open()
	t.Cleanup(func() {
		if w.st != nil {
			_ = w.st.Close()
		}
	})
	w.tribe, err = tribecrm.New(tribecrm.Options{BaseURL: srv.URLs["tribecrm"], Token: devToken, HTTP: userHTTP("tribecrm")})
	if err != nil {
		t.Fatal(err)
	}
	w.brt, err = bluerocktel.New(bluerocktel.Options{BaseURL: srv.URLs["bluerocktel"], Token: devToken, HTTP: userHTTP("bluerocktel")})
	if err != nil {
		t.Fatal(err)
	}
	w.op, err = overplane.New(overplane.Options{BaseURL: srv.URLs["overplane"], Token: devToken, HTTP: userHTTP("overplane")})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// env lists the variables the configuration reads: the emulators' URLs.
func (w *world) lookup(k string) (string, bool) {
	switch k {
	case "TRIBECRM_URL":
		return w.srv.URLs["tribecrm"], true
	case "OVERPLANE_URL":
		return w.srv.URLs["overplane"], true
	case "BLUEROCKTEL_URL":
		return w.srv.URLs["bluerocktel"], true
	}
	return "", false
}

func userHTTP(system string) *httpx.Client {
	return httpx.New(httpx.Options{System: system, RetryMax: -1})
}

// copyMappings copies examples/mappings into dir/mappings, replacing the
// files named in over.
func copyMappings(t *testing.T, dir string, over map[string]string) {
	t.Helper()
	src := filepath.Join("..", "examples", "mappings")
	if err := os.MkdirAll(filepath.Join(dir, "mappings"), 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := over[e.Name()]; ok {
			data = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(dir, "mappings", e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exampleMapping returns the text of an example mapping file.
func exampleMapping(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "mappings", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// open opens the state file and builds an engine over it.
func (w *world) open() {
	w.t.Helper()
	st, err := state.Open(w.statePath, state.Options{})
	if err != nil {
		w.t.Fatal(err)
	}
	w.st = st
	w.eng, err = engine.New(engine.Options{Systems: w.sys, Store: st, Logger: zerolog.Nop(), Now: w.o.now})
	if err != nil {
		w.t.Fatal(err)
	}
}

// reopen closes the state file and opens it again, as a restarted process would.
func (w *world) reopen() {
	w.t.Helper()
	if err := w.st.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.open()
}

// flow returns the engine flow built from the configured flow name, as
// app.Flow builds it (two-way targets get CheckBeforeWrite).
func (w *world) flow(name string) engine.Flow {
	w.t.Helper()
	fs, err := app.Flows(w.cfg, []string{name})
	if err != nil {
		w.t.Fatal(err)
	}
	return fs[0]
}

// flows returns every configured flow, in configuration order.
func (w *world) flows() []engine.Flow {
	fs, _ := app.Flows(w.cfg, nil)
	return fs
}

// run runs a flow once and fails the test on an error.
func (w *world) run(name string) *engine.Result {
	w.t.Helper()
	return w.runFlow(w.flow(name), engine.RunOptions{Mode: engine.ModeSync})
}

func (w *world) runFlow(f engine.Flow, ro engine.RunOptions) *engine.Result {
	w.t.Helper()
	res, err := w.eng.Run(w.ctx, f, ro)
	if err != nil {
		w.t.Fatalf("run %s (%s): %v", f.Name, ro.Mode, err)
	}
	return res
}

// runAll runs every flow once, in order, and returns the writes they made.
func (w *world) runAll() int {
	w.t.Helper()
	n := 0
	for _, f := range w.flows() {
		res := w.runFlow(f, engine.RunOptions{Mode: engine.ModeSync})
		n += writes(res)
	}
	return n
}

// writes is the number of writes a run made in all systems.
func writes(res *engine.Result) int {
	n := 0
	for _, c := range res.Systems {
		n += c.Writes()
	}
	return n
}

// counts returns a system's counts of a result (never nil).
func counts(res *engine.Result, system string) engine.Counts {
	if c := res.Systems[system]; c != nil {
		return *c
	}
	return engine.Counts{}
}

// ---- TribeCRM as its users see it ----

// orgSet is the TribeCRM entity set of an organisation at a stage.
func orgSet(stage string) string { return tribecrm.FunnelSet(tribecrm.FlavourOrganization, stage) }

// tribeRel is one TribeCRM commercial relationship as read through the API.
type tribeRel struct {
	ID, Set string
	Fields  map[string]any
}

func (r tribeRel) org(field string) any {
	o, _ := r.Fields["Organization"].(map[string]any)
	return o[field]
}

// tribeAll reads every commercial relationship through the API (a full pull
// with a fresh client).
func (w *world) tribeAll() []tribeRel {
	w.t.Helper()
	var out []tribeRel
	for _, rec := range pullAll(w.t, w.ctx, w.tribe) {
		out = append(out, tribeRel{ID: rec.ID, Set: rec.Entity, Fields: rec.Fields})
	}
	return out
}

// pullAll reads a whole system through a connector from the beginning.
func pullAll(t *testing.T, ctx context.Context, c connectors.Connector) []connectors.Record {
	t.Helper()
	var cur connectors.Cursor
	seen := map[string]int{}
	var out []connectors.Record
	for {
		p, err := c.Pull(ctx, cur, connectors.PullOptions{PageSize: 100})
		if err != nil {
			t.Fatalf("pull %s: %v", c.System(), err)
		}
		for _, r := range p.Records {
			k := r.Entity + ":" + r.ID
			if i, ok := seen[k]; ok {
				out[i] = r
				continue
			}
			seen[k] = len(out)
			out = append(out, r)
		}
		cur = p.Next
		if p.Done {
			return out
		}
	}
}

// tribeCreateOrg creates an organisation relationship at a stage through the API.
func (w *world) tribeCreateOrg(stage string, org map[string]any) tribeRel {
	w.t.Helper()
	rec, err := w.tribe.Create(w.ctx, connectors.Record{Entity: orgSet(stage), Fields: map[string]any{
		"IsActive": true, "IsClosed": false, "Organization": org}})
	if err != nil {
		w.t.Fatalf("create in TribeCRM: %v", err)
	}
	return tribeRel{ID: rec.ID, Set: rec.Entity, Fields: rec.Fields}
}

// tribeEditOrg changes an organisation's fields through the API.
func (w *world) tribeEditOrg(r tribeRel, org map[string]any) tribeRel {
	w.t.Helper()
	cur, err := w.tribe.Get(w.ctx, r.Set, r.ID)
	if err != nil {
		// it may have been converted: look in every set
		cur = w.tribeGet(r.ID)
	}
	rec, err := w.tribe.Update(w.ctx, cur.Entity, cur.ID, map[string]any{"Organization": org})
	if err != nil {
		w.t.Fatalf("edit in TribeCRM: %v", err)
	}
	return tribeRel{ID: rec.ID, Set: rec.Entity, Fields: rec.Fields}
}

// tribeGet reads a relationship by id, whatever its set.
func (w *world) tribeGet(id string) connectors.Record {
	w.t.Helper()
	_, set, ok := w.srv.TribeCRM.Entity(id)
	if !ok {
		w.t.Fatalf("TribeCRM has no relationship %s", id)
	}
	rec, err := w.tribe.Get(w.ctx, set, id)
	if err != nil {
		w.t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

// tribeConvert moves a relationship to another stage through the API.
func (w *world) tribeConvert(id, stage string) {
	w.t.Helper()
	cur := w.tribeGet(id)
	if _, err := w.tribe.ConvertStage(w.ctx, cur.Entity, id, orgSet(stage)); err != nil {
		w.t.Fatalf("convert in TribeCRM: %v", err)
	}
}

// ---- BlueRockTel as its users see it ----

// brtRec is one BlueRockTel record as read through the API.
type brtRec struct {
	Entity, ID string
	Fields     map[string]any
}

// brtAll reads every prospect and customer through the API.
func (w *world) brtAll() []brtRec {
	w.t.Helper()
	var out []brtRec
	for _, r := range pullAll(w.t, w.ctx, w.brt) {
		out = append(out, brtRec{Entity: r.Entity, ID: r.ID, Fields: r.Fields})
	}
	return out
}

func (w *world) brtCreate(fields map[string]any) brtRec {
	w.t.Helper()
	rec, err := w.brt.Create(w.ctx, connectors.Record{Entity: bluerocktel.EntityProspects, Fields: fields})
	if err != nil {
		w.t.Fatalf("create in BlueRockTel: %v", err)
	}
	return brtRec{Entity: rec.Entity, ID: rec.ID, Fields: rec.Fields}
}

func (w *world) brtEdit(entity, id string, fields map[string]any) {
	w.t.Helper()
	if _, err := w.brt.Update(w.ctx, entity, id, fields); err != nil {
		w.t.Fatalf("edit in BlueRockTel: %v", err)
	}
}

func (w *world) brtGet(entity, id string) map[string]any {
	w.t.Helper()
	rec, err := w.brt.Get(w.ctx, entity, id)
	if err != nil {
		w.t.Fatalf("get %s %s in BlueRockTel: %v", entity, id, err)
	}
	return rec.Fields
}

// brtWrites counts the write requests BlueRockTel received.
func (w *world) brtWrites() int { return len(w.srv.BlueRockTel.Writes()) }

// opWrites counts the write requests Overplane received.
func (w *world) opWrites() int { return len(w.srv.Overplane.Writes()) }

// ---- state ----

// linkOf returns the id a system holds for a source record, through the golden record.
func (w *world) linkOf(srcSystem, srcKey, target string) string {
	w.t.Helper()
	id, err := w.st.Link(srcSystem, srcKey)
	if err != nil || id == "" {
		return ""
	}
	g, err := w.st.Record(id)
	if err != nil || g == nil {
		return ""
	}
	return g.Links[target]
}

// canonical maps a native record to the canonical model with a system's mapping.
func (w *world) canonical(system string, entity string, fields map[string]any) map[string]any {
	w.t.Helper()
	m := w.sys[system].Map
	v, err := m.Inbound(mapping.Native{Entity: entity, Fields: fields})
	if err != nil {
		w.t.Fatalf("map %s record: %v", system, err)
	}
	return v.Fields
}

// ---- connector wrappers for fault tests ----

// wrapped forwards the optional connector interfaces of the wrapped connector.
type wrapped struct {
	connectors.Connector
}

func (c wrapped) IDsScopedByEntity() bool {
	s, ok := c.Connector.(connectors.EntityScopedIDs)
	return ok && s.IDsScopedByEntity()
}

func (c wrapped) FindScans() bool {
	s, ok := c.Connector.(connectors.ScanFinder)
	return ok && s.FindScans()
}

// lossyCreates performs every create for real, then (while armed) answers
// as if the connection dropped before the answer arrived: outcome unknown.
type lossyCreates struct {
	wrapped
	mu    sync.Mutex
	armed int // creates left to lose
	lost  int
	after func() // called after a lost create (e.g. to cancel a context)
}

func (c *lossyCreates) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	got, err := c.Connector.Create(ctx, rec)
	if err != nil {
		return got, err
	}
	c.mu.Lock()
	lose := c.armed > 0
	if lose {
		c.armed--
		c.lost++
	}
	after := c.after
	c.mu.Unlock()
	if !lose {
		return got, nil
	}
	if after != nil {
		after()
	}
	return connectors.Record{}, &connectors.Error{System: c.System(), Op: "create", Kind: connectors.OutcomeUnknown, Message: "connection reset after the request was sent (test)"}
}

func (c *lossyCreates) arm(n int, after func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.after = n, after
}

// ---- misc ----

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
