package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/yamlx"
)

// Secret is a credential. It prints as [REDACTED]; use Value for the real one.
type Secret = connectors.Secret

// Config is the whole configuration file.
type Config struct {
	// State is the bbolt state file, or a postgres:// URL of the shared
	// PostgreSQL state (write its password as ${VAR}).
	State string `yaml:"state"`
	Log   Log    `yaml:"log"`
	Admin Admin  `yaml:"admin"`
	// Webhooks configures the receiver of change events in `crmsync run`.
	Webhooks Webhooks `yaml:"webhooks"`
	// Cluster tunes the leases of replicas sharing a PostgreSQL state.
	Cluster Cluster `yaml:"cluster"`
	// ShutdownGrace is how long a stop (SIGTERM, SIGINT) waits for the page
	// in hand to finish and commit before its requests are cancelled
	// (default DefaultShutdownGrace).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// Systems maps a system name (used by flows) to its connection.
	Systems map[string]*System `yaml:"systems"`
	Flows   []*Flow            `yaml:"flows"`

	// File is the path the config was loaded from (not in YAML).
	File string `yaml:"-"`
	// graceLine is the line of shutdown_grace, 0 when the key is absent.
	graceLine int
	// types are the system types the file was read with.
	types *connectors.Registry
}

// Types returns the system types the file was read with.
func (c *Config) Types() *connectors.Registry { return c.types }

// DefaultShutdownGrace is shutdown_grace when the file does not set it.
const DefaultShutdownGrace = 10 * time.Second

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" jsonschema:"enum=trace,enum=debug,enum=info,enum=warn,enum=error"`
	Format string `yaml:"format" jsonschema:"enum=console,enum=json"`
}

// Admin configures the HTTP admin endpoint of `crmsync run`.
type Admin struct {
	Listen string `yaml:"listen"` // host:port, "" disables
	// Token enables the console's changing actions (run now, replay and
	// drop dead letters) for requests that carry it; "" leaves them off.
	// Write it as ${CRMSYNC_ADMIN_TOKEN} to keep it out of the file.
	Token Secret `yaml:"token"`
}

// Webhooks configures the webhook receiver (package webhook). Zero values
// take the receiver's defaults (webhook.DefaultDebounce, ...).
type Webhooks struct {
	// Listen is the receiver's own host:port ("" disables it); it may face
	// the internet behind a TLS proxy, unlike admin.listen.
	Listen string `yaml:"listen"`
	// PublicURL is the address the vendors deliver to (the proxy's), used
	// by `crmsync webhooks register`; deliveries go to PublicURL +
	// /webhooks/<system>.
	PublicURL string `yaml:"public_url"`
	// Secret signs POST /hooks/<flow> (HMAC-SHA-256); "" leaves that
	// route off.
	Secret    Secret        `yaml:"secret"`
	Debounce  time.Duration `yaml:"debounce"`
	MaxBody   int64         `yaml:"max_body"`   // bytes
	Queue     int           `yaml:"queue"`      // events waiting, at most
	RateLimit float64       `yaml:"rate_limit"` // events per second per source
	Burst     int           `yaml:"burst"`
	MaxSkew   time.Duration `yaml:"max_skew"` // generic hook's timestamp tolerance
}

// MinAdminToken is the shortest admin.token accepted.
const MinAdminToken = 16

// System is one CRM connection: the keys every system has, and the keys of
// its type in Options.
type System struct {
	Type          string        `yaml:"type"` // a registered type: tribecrm, overplane, bluerocktel
	BaseURL       string        `yaml:"base_url"`
	Token         Secret        `yaml:"token"`
	Mapping       string        `yaml:"mapping"`
	PageSize      int           `yaml:"page_size"`  // 0: connectors.DefaultPageSize
	RateLimit     float64       `yaml:"rate_limit"` // requests per second
	Burst         int           `yaml:"burst"`
	Timeout       time.Duration `yaml:"timeout"`         // 0: httpx.DefaultTimeout
	Retries       int           `yaml:"retries"`         // 0: httpx.DefaultRetries
	RetryAfterMax time.Duration `yaml:"retry_after_max"` // 0: httpx.DefaultRetryAfterMax
	Overlap       time.Duration `yaml:"overlap"`         // cursor overlap window re-read on each pull; 0: connectors.DefaultOverlap
	// WebhookSecret verifies the vendor's webhook deliveries for this
	// system (types that push events only).
	WebhookSecret Secret `yaml:"webhook_secret"`

	// Options are the keys of the system's type (tribecrm.Config, ...):
	// decoded, defaulted and checked by the type's own code.
	Options connectors.Options `yaml:"-"`

	Name string `yaml:"-"`
	line int
	// pageSizeSet is whether the file sets page_size (an explicit 0 is an
	// error, not the default).
	pageSizeSet bool
	// rest holds the keys that are not common, for the type to decode.
	rest *yaml.Node
	// decodeErrs are the common keys' type errors (kept here: a system
	// whose decoding failed would otherwise be dropped from the map).
	decodeErrs []yamlx.Error
}

// commonSystem decodes the common keys (no UnmarshalYAML of its own).
type commonSystem System

// commonKeys are the keys every system has.
var commonKeys = yamlx.Keys(reflect.TypeOf(commonSystem{}))

// UnmarshalYAML decodes the common keys and keeps the others for the
// system's type (Parse decodes them once the type is known).
func (s *System) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		s.decodeErrs = yamlx.Decode(n, (*commonSystem)(s), yamlx.Schema{Section: sectionName})
		return nil
	}
	common := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	rest := &yaml.Node{Kind: yaml.MappingNode, Tag: n.Tag, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		dst := rest
		if slices.Contains(commonKeys, n.Content[i].Value) {
			dst = common
		}
		dst.Content = append(dst.Content, n.Content[i], n.Content[i+1])
	}
	s.rest = rest
	s.decodeErrs = yamlx.Decode(common, (*commonSystem)(s), yamlx.Schema{Section: sectionName})
	return nil
}

// Settings are the common keys as connectors take them.
func (s *System) Settings() connectors.Settings {
	return connectors.Settings{Name: s.Name, BaseURL: strings.TrimRight(s.BaseURL, "/"), Token: s.Token,
		PageSize: s.PageSize, Overlap: s.Overlap,
		HTTP: connectors.HTTPSettings{Timeout: s.Timeout, Retries: s.Retries, RetryAfterMax: s.RetryAfterMax, RateLimit: s.RateLimit, Burst: s.Burst}}
}

// Flow is one sync flow from a source system to target systems.
type Flow struct {
	Name     string    `yaml:"name"`
	Source   string    `yaml:"source"`
	Targets  []*Target `yaml:"targets"`
	Schedule string    `yaml:"schedule"` // cron expression (5 fields) or @every/@hourly/...
	// WriteConcurrency is how many writes per target run at once (default 4).
	WriteConcurrency int `yaml:"write_concurrency"`
	// AllowStageBack lets a stage move backwards in the funnel.
	AllowStageBack bool `yaml:"allow_stage_back"`
	// Match lists the canonical fields used, in order, to find an existing
	// record in a target before creating one.
	Match []string `yaml:"match"`
	// Deletes configures what a deletion at the source does in the targets.
	Deletes Deletes `yaml:"deletes"`
	// MaxRetries caps automatic retries of a dead letter (default 10).
	MaxRetries int `yaml:"max_retries"`

	line int
}

// Deletes is a flow's delete policy.
type Deletes struct {
	Policy         engine.DeleteMode `yaml:"policy"`          // ignore (default), close, delete
	MaxPerRun      int               `yaml:"max_per_run"`     // default 50
	ReconcileEvery time.Duration     `yaml:"reconcile_every"` // default 24h
}

// Target is one destination of a flow.
type Target struct {
	System string `yaml:"system"`
	// Filter limits which records this target receives (empty: all).
	Filter Filter `yaml:"filter"`
}

// Filter selects records by kind and stage.
type Filter struct {
	Kinds  []funnel.Kind  `yaml:"kinds"`
	Stages []funnel.Stage `yaml:"stages"`
}

// Error is one configuration problem.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found, in file order.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, expands, decodes, defaults and validates the file at path;
// types are the system types this build knows (connectors/builtin).
func Load(path string, types *connectors.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv, types)
}

// Parse decodes data (named file for messages) with env lookups from lookup
// and the system types of types.
func Parse(file string, data []byte, lookup func(string) (string, bool), types *connectors.Registry) (*Config, error) {
	raw, problems := yamlx.Parse(data, "a configuration file")
	if raw == nil && len(problems) > 0 {
		return nil, fileErrors(file, problems) // not YAML: nothing else to tell
	}
	if raw == nil || len(raw.Content) == 0 || (raw.Content[0].Kind == yaml.ScalarNode && raw.Content[0].ShortTag() == "!!null") {
		return nil, Errors{{File: file, Msg: "the file is empty (expected keys state, systems, flows)"}}
	}
	if top := raw.Content[0]; top.Kind != yaml.MappingNode {
		return nil, Errors{{file, top.Line, fmt.Sprintf("the file holds %s (expected keys state, systems, flows)", yamlx.Describe(top))}}
	}
	// Pass 1: the text as written, for keys written twice, unknown keys and
	// types with line numbers (a ${VAR}'s value, which may be a secret, is
	// in none of these messages). They are collected, not returned at once,
	// so validate also reports every other problem of the file.
	var probe Config
	decodeErrs := fileErrors(file, append(problems, yamlx.Decode(raw, &probe, yamlx.Schema{Section: sectionName})...))
	// Pass 2: expand ${VAR} in scalar values, then decode the expanded tree
	// (read again: expansion changes it; its problems are those of pass 1).
	root, _ := yamlx.Parse(data, "")
	var errs Errors
	expandNode(root, lookup, func(line int, msg string) { errs = append(errs, Error{file, line, msg}) })
	if len(errs) > 0 {
		return nil, errs
	}
	cfg := &Config{File: file, types: types}
	if err := yamlx.Unmarshal(root, cfg); err != nil && len(decodeErrs) == 0 {
		return nil, fileErrors(file, yamlx.FromYAML(err))
	}
	// Otherwise already reported by pass 1: what fits was decoded, to check
	// the rest.
	pos := positions(root)
	decodeErrs = append(decodeErrs, cfg.place(pos, &probe)...)
	cfg.applyDefaults()
	// A key whose value did not decode has its zero value: its checks
	// would report that zero as a second, false problem on the same line.
	bad := map[int]bool{}
	for _, e := range decodeErrs {
		bad[e.Line] = true
	}
	errs = decodeErrs
	for _, e := range cfg.validate(pos, types) {
		if !bad[e.Line] || e.Line == 0 {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(a, b int) bool { return errs[a].Line < errs[b].Line })
		return nil, errs
	}
	return cfg, nil
}

// place gives every system and flow its name and lines, and decodes each
// system's type keys; probe is the file decoded before ${VAR} expansion.
func (cfg *Config) place(pos posIndex, probe *Config) Errors {
	var errs Errors
	cfg.graceLine = pos.keyLine("shutdown_grace")
	for name, s := range cfg.Systems {
		if s == nil {
			s = &System{}
			cfg.Systems[name] = s
		}
		s.Name = name
		s.line = pos.line("systems", name)
		s.pageSizeSet = pos.hasInt("systems", name, "page_size")
		var written *yaml.Node
		if ps := probe.Systems[name]; ps != nil {
			written = ps.rest
			errs = append(errs, fileErrors(cfg.File, ps.decodeErrs)...)
		}
		errs = append(errs, s.decodeOptions(cfg.File, cfg.types, written)...)
	}
	for i, f := range cfg.Flows {
		if f == nil {
			cfg.Flows[i] = &Flow{}
			f = cfg.Flows[i]
		}
		f.line = pos.line("flows", strconv.Itoa(i))
	}
	return errs
}

// decodeOptions decodes the keys of the system's type into s.Options and
// defaults them; written is the same keys before ${VAR} expansion, whose
// unknown keys and type errors are returned. An unknown type gets no
// options (validate reports the type).
func (s *System) decodeOptions(file string, types *connectors.Registry, written *yaml.Node) Errors {
	t, ok := types.Lookup(s.Type)
	if !ok {
		return nil
	}
	opts := t.NewOptions()
	var errs []yamlx.Error
	if written != nil {
		own := reflect.TypeOf(opts).Elem()
		name := func(rt reflect.Type) string {
			if rt == own {
				return "a system of type " + t.Name
			}
			return strings.ToLower(strings.TrimSuffix(rt.Name(), "Config"))
		}
		errs = yamlx.Decode(written, t.NewOptions(), yamlx.Schema{Section: name, Also: commonKeys})
	}
	if s.rest != nil {
		_ = yamlx.Unmarshal(s.rest, opts) // its type errors are those of written
	}
	opts.Default()
	s.Options = opts
	return fileErrors(file, errs)
}

func fileErrors(file string, in []yamlx.Error) Errors {
	var out Errors
	for _, e := range in {
		out = append(out, Error{file, e.Line, e.Msg})
	}
	return out
}

// sectionName names a part of the file in messages; "" leaves it to yamlx
// ("unknown top-level key", the lower-cased type name below).
func sectionName(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(System{}), reflect.TypeOf(commonSystem{}):
		return "a system"
	case reflect.TypeOf(Flow{}):
		return "a flow"
	}
	return ""
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

func expandNode(n *yaml.Node, lookup func(string) (string, bool), fail func(int, string)) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		if rest := envRe.ReplaceAllString(n.Value, ""); strings.Contains(rest, "${") {
			fail(n.Line, fmt.Sprintf("%q is not a ${VAR} reference (expected ${NAME} or ${NAME:-default}, NAME of letters, digits and _)", rest[strings.Index(rest, "${"):]))
			return
		}
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			sm := envRe.FindStringSubmatch(m)
			if v, ok := lookup(sm[1]); ok && v != "" {
				return v
			}
			if sm[2] != "" {
				return sm[3]
			}
			fail(n.Line, fmt.Sprintf("environment variable %s is not set (set it, or write ${%s:-default})", sm[1], sm[1]))
			return ""
		})
		n.Style = yaml.DoubleQuotedStyle
		if n.Tag == "" || n.Tag == "!!str" {
			n.Tag = "!!str"
		}
	}
	for _, c := range n.Content {
		expandNode(c, lookup, fail)
	}
}

// posIndex finds line numbers of YAML keys by path.
type posIndex struct{ root *yaml.Node }

func positions(root *yaml.Node) posIndex { return posIndex{root} }

// line returns the line of the value at path (map keys or list indexes), or
// of the deepest node found.
func (p posIndex) line(path ...string) int {
	n := p.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, key := range path {
		next := (*yaml.Node)(nil)
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// keyLine returns the line of a top-level key whose value is set (not
// empty or null), or 0.
func (p posIndex) keyLine(key string) int {
	n := p.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return 0
			}
			return n.Content[i].Line
		}
	}
	return 0
}

// value returns the value node at path (map keys or list indexes), or nil
// when a step of it is missing.
func (p posIndex) value(path ...string) *yaml.Node {
	n := p.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range path {
		if n == nil {
			return nil
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		n = next
	}
	return n
}

// has reports whether the file sets the key at path: it is there and its
// value is not empty or null. Unlike line, it tells a missing key from one
// that is set.
func (p posIndex) has(path ...string) bool {
	v := p.value(path...)
	return v != nil && v.Tag != "!!null"
}

// hasInt reports whether the file sets the key at path to an integer. A
// value of another type is a decode error, already reported: it does not
// count, so the zero it decoded to gets no second message.
func (p posIndex) hasInt(path ...string) bool {
	var n int
	return p.has(path...) && yamlx.Unmarshal(p.value(path...), &n) == nil
}

func (c *Config) applyDefaults() {
	if c.graceLine == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "console"
	}
	if c.State == "" {
		c.State = "crmsync.db"
	}
	if !state.IsURL(c.State) {
		c.State = c.resolve(c.State)
	}
	// A system's paging and HTTP keys keep 0 for "the default": those are
	// the connectors' and httpx's (connectors.DefaultPageSize,
	// httpx.DefaultTimeout, ...), and its type's own keys are defaulted by
	// the type (decodeOptions). A flow's write_concurrency, max_retries and
	// deletes limits are the engine's (engine.DefaultWriteConcurrency, ...).
	for _, s := range c.Systems {
		if s.Mapping != "" {
			s.Mapping = c.resolve(s.Mapping)
		}
	}
	for _, f := range c.Flows {
		if f.Schedule == "" {
			f.Schedule = DefaultSchedule
		}
		if f.Deletes.Policy == "" {
			f.Deletes.Policy = engine.DeleteIgnore
		}
	}
}

func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// DefaultSchedule is a flow's schedule when the file does not set one.
const DefaultSchedule = "@every 5m"

// ScheduleParser is the cron parser crmsync uses: standard 5 fields plus
// descriptors (@every 5m, @hourly, ...).
func ScheduleParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// validator collects the problems of one configuration file.
type validator struct {
	c     *Config
	pos   posIndex
	types *connectors.Registry
	errs  Errors
	// names are the configured systems, sorted, for "expected one of".
	names []string
}

func (v *validator) add(line int, format string, a ...any) {
	v.errs = append(v.errs, Error{v.c.File, line, fmt.Sprintf(format, a...)})
}

// validate checks the decoded, defaulted config and returns every problem,
// sorted by line (stable: problems on one line keep the order checked).
func (c *Config) validate(pos posIndex, types *connectors.Registry) Errors {
	v := &validator{c: c, pos: pos, types: types, names: c.SystemNames()}
	v.validateLog()
	v.validateState()
	v.validateAdmin()
	if c.ShutdownGrace <= 0 {
		v.add(c.graceLine, "shutdown_grace %s must be positive (expected e.g. 10s; it bounds how long a stop waits for the page in hand)", c.ShutdownGrace)
	}
	if len(c.Systems) < 2 && !wrongKind(pos.value("systems"), yaml.MappingNode) {
		v.add(pos.line("systems"), "%d system(s) configured; a sync needs at least two (expected a systems: section naming a source and a target)", len(c.Systems))
	}
	for _, n := range v.names {
		if !nameRe.MatchString(n) {
			v.add(v.c.Systems[n].line, "system name %q may hold only letters, digits, - and _ (expected e.g. %q; it names the system in state keys, metrics and logs)", n, notNameRe.ReplaceAllString(n, "_"))
		}
		v.validateSystem(n)
	}
	v.validateFlows()
	v.validateWebhooks()
	v.validateCluster()
	sort.SliceStable(v.errs, func(a, b int) bool { return v.errs[a].Line < v.errs[b].Line })
	return v.errs
}

func (v *validator) validateLog() {
	l := v.c.Log
	switch l.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		v.add(v.pos.line("log", "level"), "log.level %q is not one of trace, debug, info, warn, error", l.Level)
	}
	if l.Format != "console" && l.Format != "json" {
		v.add(v.pos.line("log", "format"), "log.format %q is not console or json", l.Format)
	}
}

// validateState checks that the state path names a file: it may be missing
// (it is created, with its directories), but not a directory, nor below a
// file.
func (v *validator) validateState() {
	p := v.c.State
	line := v.pos.keyLine("state")
	if state.IsURL(p) {
		u, err := url.Parse(p)
		switch {
		case err != nil:
			v.add(line, "state %s is not a valid URL (expected postgres://USER:${PASSWORD}@HOST:PORT/DATABASE)", state.Describe(p))
		case u.Host == "" && u.Query().Get("host") == "":
			v.add(line, "state %s names no host (expected postgres://USER:${PASSWORD}@HOST:PORT/DATABASE, or ?host=/socket/dir)", state.Describe(p))
		case strings.Trim(u.Path, "/") == "":
			v.add(line, "state %s names no database (expected postgres://USER:${PASSWORD}@HOST:PORT/DATABASE)", state.Describe(p))
		}
		return
	}
	fi, err := os.Stat(p)
	if err == nil {
		if fi.IsDir() {
			v.add(line, "state %s is a directory (expected the path of a file, e.g. %s; a missing file is created)", p, filepath.Join(p, "crmsync.db"))
		}
		return
	}
	// Missing: the nearest existing ancestor must be a directory.
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil {
			if !fi.IsDir() {
				v.add(line, "state %s: %s is not a directory (expected the path of a file in a directory; missing directories are created)", p, dir)
			}
			return
		}
		if filepath.Dir(dir) == dir {
			return
		}
	}
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

// validateAdmin checks admin.listen: empty (no endpoint) or host:port, the
// host empty (every interface), an IP address or a host name, the port a
// number (0 picks a free one; the address is logged at start).
func (v *validator) validateAdmin() {
	if t := v.c.Admin.Token.Value(); t != "" && len(t) < MinAdminToken {
		v.add(v.pos.line("admin", "token"), "admin.token is %d characters long; use at least %d (e.g. the output of `openssl rand -hex 16`), or leave it out to keep the console's changing actions off", len(t), MinAdminToken)
	}
	v.validateListen("admin.listen", v.c.Admin.Listen, v.pos.line("admin", "listen"), "127.0.0.1:9090")
}

// validateListen checks a host:port to listen on ("" is off).
func (v *validator) validateListen(key, l string, line int, example string) {
	if l == "" {
		return
	}
	expected := `(expected e.g. ` + example + `, or "" to disable the endpoint)`
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		why := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err
		}
		v.add(line, "%s %q is not host:port: %s %s", key, l, why, expected)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(line, "%s %q: port %q is not a number 0..65535 %s", key, l, port, expected)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostnameRe.MatchString(host) {
		v.add(line, "%s %q: host %q is not an IP address or a host name %s", key, l, host, expected)
	}
}

// sysLine is the line of key k of system n (the system's when k is absent).
func (v *validator) sysLine(n, k string) int { return v.pos.line("systems", n, k) }

// validateSystem checks systems.<n>: connection, type-specific options,
// mapping and limits, in that order.
func (v *validator) validateSystem(n string) {
	v.validateConnection(n)
	v.validateTypeOptions(n)
	v.validateLimits(n)
	v.validateHTTP(n)
}

// validateConnection checks type and base_url.
func (v *validator) validateConnection(n string) {
	s := v.c.Systems[n]
	if s.Type == "" {
		v.add(s.line, "systems.%s.type is missing (expected one of %s)", n, strings.Join(v.types.Names(), ", "))
	} else if _, ok := v.types.Lookup(s.Type); !ok {
		v.add(v.sysLine(n, "type"), "systems.%s.type %q is not one of %s", n, s.Type, strings.Join(v.types.Names(), ", "))
	}
	if s.BaseURL == "" {
		v.add(s.line, "systems.%s.base_url is missing (expected e.g. http://127.0.0.1:8081)", n)
	} else if !strings.HasPrefix(s.BaseURL, "http://") && !strings.HasPrefix(s.BaseURL, "https://") {
		v.add(v.sysLine(n, "base_url"), "systems.%s.base_url %q must start with http:// or https://", n, s.BaseURL)
	}
}

// validateTypeOptions reports the problems the system's type finds in its
// own keys (credentials among them), at the line of the key concerned.
func (v *validator) validateTypeOptions(n string) {
	s := v.c.Systems[n]
	if s.Options == nil {
		return
	}
	for _, p := range s.Options.Check(s.Settings()) {
		if p.Key == "" {
			v.add(s.line, "systems.%s %s", n, p.Msg)
			continue
		}
		v.add(v.pos.line(append([]string{"systems", n}, strings.Split(p.Key, ".")...)...), "systems.%s.%s %s", n, p.Key, p.Msg)
	}
}

// validateLimits checks the mapping file, paging and rate limiting.
func (v *validator) validateLimits(n string) {
	s := v.c.Systems[n]
	if s.Mapping == "" {
		v.add(s.line, "systems.%s.mapping is missing (expected the path of a mapping file)", n)
	} else if _, err := os.Stat(s.Mapping); err != nil {
		v.add(v.sysLine(n, "mapping"), "systems.%s.mapping: cannot read %s: %v", n, s.Mapping, errors.Unwrap(err))
	}
	if (s.pageSizeSet && s.PageSize < 1) || s.PageSize < 0 || s.PageSize > connectors.MaxPageSize {
		v.add(v.sysLine(n, "page_size"), "systems.%s.page_size %d is out of range (expected 1..%d; leave it out for %d)", n, s.PageSize, connectors.MaxPageSize, connectors.DefaultPageSize)
	}
	if s.RateLimit < 0 {
		v.add(v.sysLine(n, "rate_limit"), "systems.%s.rate_limit %g must not be negative (expected 0 for no limit, or requests per second)", n, s.RateLimit)
	}
}

// validateHTTP checks the HTTP client's settings. Zero is each one's
// default; retries may be negative (no retries, as httpx takes it).
func (v *validator) validateHTTP(n string) {
	s := v.c.Systems[n]
	if s.Burst < 0 {
		v.add(v.sysLine(n, "burst"), "systems.%s.burst %d must not be negative (expected 0 for the default or a positive token-bucket size)", n, s.Burst)
	}
	for _, d := range []struct {
		key    string
		val    time.Duration
		expect string
	}{
		{"timeout", s.Timeout, fmt.Sprintf("0s for the default %s, or a positive limit for one HTTP attempt", httpx.DefaultTimeout)},
		{"retry_after_max", s.RetryAfterMax, fmt.Sprintf("0s for the default %s, or a positive cap on a server's Retry-After", httpx.DefaultRetryAfterMax)},
		{"overlap", s.Overlap, fmt.Sprintf("0s for the default %s, or a positive re-read window behind the cursor", connectors.DefaultOverlap)},
	} {
		if d.val < 0 {
			v.add(v.sysLine(n, d.key), "systems.%s.%s %s must not be negative (expected %s)", n, d.key, d.val, d.expect)
		}
	}
}

// nameRe is what a system's or a flow's name may be: it is part of state
// keys, dead-letter keys, metric labels and console URLs.
var nameRe, notNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`), regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// wrongKind reports a value that is set but is not of kind want: its decode
// error is reported already, and "nothing configured" would be a second,
// false problem.
func wrongKind(n *yaml.Node, want yaml.Kind) bool {
	return n != nil && n.Tag != "!!null" && n.Kind != want
}

// expectSystems ends a "not a configured system" message.
func (v *validator) expectSystems() string {
	if len(v.names) == 0 {
		return "no systems are configured"
	}
	return "expected one of: " + strings.Join(v.names, ", ")
}

// validateFlows checks every flow, and that there is one.
func (v *validator) validateFlows() {
	if len(v.c.Flows) == 0 && !wrongKind(v.pos.value("flows"), yaml.SequenceNode) {
		// At the flows key when there is one: a flows value that did not
		// decode is reported there already, once.
		v.add(v.pos.keyLine("flows"), "no flows configured (expected a flows: list)")
	}
	seen := map[string]int{} // flow name -> line of its first use
	parser := ScheduleParser()
	for i := range v.c.Flows {
		v.validateFlow(i, seen, parser)
	}
}

// flowLine is the line of path under flows[i] (the deepest found).
func (v *validator) flowLine(i int, path ...string) int {
	return v.pos.line(append([]string{"flows", strconv.Itoa(i)}, path...)...)
}

// validateFlow checks flows[i]; seen holds the names of the flows before it.
func (v *validator) validateFlow(i int, seen map[string]int, parser cron.Parser) {
	f := v.c.Flows[i]
	if f.Name == "" {
		v.add(f.line, "flows[%d] has no name", i)
	} else if !nameRe.MatchString(f.Name) {
		v.add(v.flowLine(i, "name"), "flow name %q may hold only letters, digits, - and _ (it names the flow in state keys, metrics and the console's URLs)", f.Name)
	} else if prev, dup := seen[f.Name]; dup {
		v.add(v.flowLine(i, "name"), "flow name %q is used twice (first at line %d)", f.Name, prev)
	} else {
		seen[f.Name] = v.flowLine(i, "name")
	}
	if _, ok := v.c.Systems[f.Source]; !ok {
		v.add(v.flowLine(i, "source"), "flows[%d].source %q is not a configured system (%s)", i, f.Source, v.expectSystems())
	}
	v.validateTargets(i)
	if _, err := parser.Parse(f.Schedule); err != nil {
		v.add(v.flowLine(i, "schedule"), "flows[%d].schedule %q is not a cron expression: %v (expected e.g. \"*/5 * * * *\" or \"@every 5m\")", i, f.Schedule, err)
	}
	for k, m := range f.Match {
		if _, ok := funnel.Lookup(m); !ok {
			v.add(v.flowLine(i, "match", strconv.Itoa(k)), "flows[%d].match: %q is not a canonical field (expected e.g. email, registration_number, vat_number, name)", i, m)
		}
	}
	v.validateDeletes(i)
	if f.MaxRetries < 0 {
		v.add(v.flowLine(i, "max_retries"), "flows[%d].max_retries must not be negative", i)
	}
	if f.WriteConcurrency < 0 || f.WriteConcurrency > engine.MaxWriteConcurrency || (f.WriteConcurrency == 0 && v.pos.has("flows", strconv.Itoa(i), "write_concurrency")) {
		v.add(v.flowLine(i, "write_concurrency"), "flows[%d].write_concurrency %d is out of range (expected 1..%d; leave it out for %d)", i, f.WriteConcurrency, engine.MaxWriteConcurrency, engine.DefaultWriteConcurrency)
	}
}

// validateTargets checks flows[i].targets: each a configured system other
// than the source, listed once, with a valid filter.
func (v *validator) validateTargets(i int) {
	f := v.c.Flows[i]
	if len(f.Targets) == 0 && !wrongKind(v.pos.value("flows", strconv.Itoa(i), "targets"), yaml.SequenceNode) {
		v.add(f.line, "flow %q has no targets (expected targets: [{system: NAME}])", f.Name)
	}
	tseen := map[string]bool{}
	for j, t := range f.Targets {
		tj := strconv.Itoa(j)
		if t == nil {
			v.add(v.flowLine(i, "targets", tj), "flows[%d].targets[%d] is empty", i, j)
			continue
		}
		at := v.flowLine(i, "targets", tj, "system")
		if _, ok := v.c.Systems[t.System]; !ok {
			v.add(at, "flows[%d].targets[%d].system %q is not a configured system (%s)", i, j, t.System, v.expectSystems())
		}
		if t.System == f.Source {
			v.add(at, "flow %q targets its own source %q", f.Name, t.System)
		}
		if tseen[t.System] {
			v.add(at, "flow %q lists target %q twice", f.Name, t.System)
		}
		tseen[t.System] = true
		v.validateFilter(i, j, t.Filter)
	}
}

// validateFilter checks flows[i].targets[j].filter.
func (v *validator) validateFilter(i, j int, flt Filter) {
	tj := strconv.Itoa(j)
	for k, kind := range flt.Kinds {
		if !kind.Valid() {
			v.add(v.flowLine(i, "targets", tj, "filter", "kinds", strconv.Itoa(k)), "kind %q is not %s or %s", kind, funnel.Organization, funnel.Person)
		}
	}
	for k, st := range flt.Stages {
		if st.Rank() < 0 {
			v.add(v.flowLine(i, "targets", tj, "filter", "stages", strconv.Itoa(k)), "stage %q is not one of %s", st, joinStrings(funnel.Stages()))
		}
	}
}

// validateDeletes checks flows[i].deletes.
func (v *validator) validateDeletes(i int) {
	d := v.c.Flows[i].Deletes
	if !slices.Contains(engine.DeleteModes(), d.Policy) {
		v.add(v.flowLine(i, "deletes", "policy"), "flows[%d].deletes.policy %q is not one of %s", i, d.Policy, joinStrings(engine.DeleteModes()))
	}
	if d.MaxPerRun < 0 {
		v.add(v.flowLine(i, "deletes", "max_per_run"), "flows[%d].deletes.max_per_run must not be negative", i)
	}
}

// joinStrings lists values of a string type, comma separated.
func joinStrings[S ~string](vs []S) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}

// Flow returns the flow called name.
func (c *Config) Flow(name string) (*Flow, bool) {
	for _, f := range c.Flows {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

// SystemNames lists configured systems, sorted.
func (c *Config) SystemNames() []string {
	out := make([]string, 0, len(c.Systems))
	for n := range c.Systems {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
