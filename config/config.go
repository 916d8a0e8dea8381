package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/funnel"
)

// Secret is a credential. It prints as [REDACTED]; use Value for the real one.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Config is the whole configuration file.
type Config struct {
	// State is the bbolt state file.
	State string `yaml:"state"`
	Log   Log    `yaml:"log"`
	Admin Admin  `yaml:"admin"`
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
}

// DefaultShutdownGrace is shutdown_grace when the file does not set it.
const DefaultShutdownGrace = 10 * time.Second

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error
	Format string `yaml:"format"` // console or json
}

// Admin configures the HTTP admin endpoint of `crmsync run`.
type Admin struct {
	Listen string `yaml:"listen"` // host:port, "" disables
}

// System is one CRM connection.
type System struct {
	Type          string        `yaml:"type"` // tribecrm, overplane, bluerocktel
	BaseURL       string        `yaml:"base_url"`
	Token         Secret        `yaml:"token"`
	Mapping       string        `yaml:"mapping"`
	PageSize      int           `yaml:"page_size"`
	RateLimit     float64       `yaml:"rate_limit"` // requests per second
	Burst         int           `yaml:"burst"`
	Timeout       time.Duration `yaml:"timeout"`
	Retries       int           `yaml:"retries"`
	RetryAfterMax time.Duration `yaml:"retry_after_max"`
	Overlap       time.Duration `yaml:"overlap"`       // cursor overlap window re-read on each pull
	OAuth         *OAuth        `yaml:"oauth"`         // tribecrm: client credentials
	Login         *Login        `yaml:"login"`         // bluerocktel: POST /api/login
	Naming        string        `yaml:"naming"`        // bluerocktel: snake or camel field names on writes
	ConvertPath   string        `yaml:"convert_path"`  // bluerocktel: prospect -> customer conversion route
	UpgradeField  string        `yaml:"upgrade_field"` // tribecrm: _UpgradeType (default) or _Type for stage conversion
	Stages        []string      `yaml:"stages"`        // tribecrm: funnel stages to read (default all: Suspect, Lead, HotProspect, Prospect, Customer)
	UpdateMethod  string        `yaml:"update_method"` // tribecrm: post (default: POST Set with ID, the vendor's own clients), patch or put (GET, then PUT of the whole entity)

	Name string `yaml:"-"`
	line int
	// pageSizeSet is whether the file sets page_size (an explicit 0 is an
	// error, not the default).
	pageSizeSet bool
}

// OAuth holds OAuth2 client credentials (TribeCRM).
type OAuth struct {
	TokenURL     string `yaml:"token_url"`
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	Scope        string `yaml:"scope"`
}

// Login holds BlueRockTel login credentials.
type Login struct {
	Email    string `yaml:"email"`
	Password Secret `yaml:"password"`
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
	Policy         string        `yaml:"policy"`          // ignore (default), close, delete
	MaxPerRun      int           `yaml:"max_per_run"`     // default 50
	ReconcileEvery time.Duration `yaml:"reconcile_every"` // default 24h
}

// Target is one destination of a flow.
type Target struct {
	System string `yaml:"system"`
	// Filter limits which records this target receives (empty: all).
	Filter Filter `yaml:"filter"`
}

// Filter selects records by kind and stage.
type Filter struct {
	Kinds  []string `yaml:"kinds"`
	Stages []string `yaml:"stages"`
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

// Types lists the supported system types.
func Types() []string { return []string{"tribecrm", "overplane", "bluerocktel"} }

// Load reads, expands, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse decodes data (named file for messages) with env lookups from lookup.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlErrors(file, err)
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Msg: "the file is empty (expected keys state, systems, flows)"}}
	}
	// Pass 1: strict decode of the raw text, for unknown keys and types with
	// line numbers. Those are collected, not returned at once, so validate
	// also reports every other problem of the file.
	var probe Config
	var decodeErrs Errors
	if err := strictDecode(data, &probe); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, yamlErrors(file, err) // not even YAML: nothing more to check
		}
		decodeErrs = yamlErrors(file, err).(Errors)
	}
	// Pass 2: expand ${VAR} in scalar values, then decode the expanded tree strictly.
	var errs Errors
	expandNode(&root, lookup, func(line int, msg string) { errs = append(errs, Error{file, line, msg}) })
	if len(errs) > 0 {
		return nil, errs
	}
	expanded, err := yaml.Marshal(&root)
	if err != nil {
		return nil, fmt.Errorf("%s: re-encode after expansion: %w", file, err)
	}
	cfg := &Config{File: file}
	if len(decodeErrs) == 0 {
		if err := strictDecode(expanded, cfg); err != nil {
			return nil, yamlErrors(file, err)
		}
	} else {
		// Already reported: decode what fits, to check the rest.
		var te *yaml.TypeError
		if err := yaml.Unmarshal(expanded, cfg); err != nil && !errors.As(err, &te) {
			return nil, append(decodeErrs, lineError(file, err.Error()))
		}
	}
	pos := positions(&root)
	cfg.graceLine = pos.keyLine("shutdown_grace")
	for name, s := range cfg.Systems {
		if s == nil {
			s = &System{}
			cfg.Systems[name] = s
		}
		s.Name = name
		s.line = pos.line("systems", name)
		s.pageSizeSet = pos.hasInt("systems", name, "page_size")
	}
	for i, f := range cfg.Flows {
		if f == nil {
			cfg.Flows[i] = &Flow{}
			f = cfg.Flows[i]
		}
		f.line = pos.line("flows", strconv.Itoa(i))
	}
	cfg.applyDefaults()
	errs = append(decodeErrs, cfg.validate(pos)...)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(a, b int) bool { return errs[a].Line < errs[b].Line })
		return nil, errs
	}
	return cfg, nil
}

func strictDecode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

func yamlErrors(file string, err error) error {
	var te *yaml.TypeError
	var out Errors
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			out = append(out, lineError(file, m))
		}
		return out
	}
	return Errors{lineError(file, err.Error())}
}

func lineError(file, msg string) Error {
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Error{file, n, friendly(m[2])}
	}
	return Error{file, 0, strings.TrimPrefix(msg, "yaml: ")}
}

var notFoundRe = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// friendly rewrites yaml.v3's Go-flavoured messages for admins.
func friendly(msg string) string {
	if m := notFoundRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("unknown key %q in %s (expected one of: %s)", m[1], sectionName(m[2]), strings.Join(keysOf(m[2]), ", "))
	}
	return msg
}

func sectionName(t string) string {
	switch t {
	case "Config":
		return "the top level"
	case "System":
		return "a system"
	case "Flow":
		return "a flow"
	}
	return strings.ToLower(t)
}

func keysOf(t string) []string {
	switch t {
	case "Config":
		return []string{"state", "log", "admin", "shutdown_grace", "systems", "flows"}
	case "System":
		return []string{"type", "base_url", "token", "mapping", "page_size", "rate_limit", "burst", "timeout", "retries", "retry_after_max", "overlap", "oauth", "login", "naming", "convert_path", "upgrade_field", "stages", "update_method"}
	case "Flow":
		return []string{"name", "source", "targets", "schedule", "write_concurrency", "allow_stage_back", "match", "deletes", "max_retries"}
	case "Deletes":
		return []string{"policy", "max_per_run", "reconcile_every"}
	case "Target":
		return []string{"system", "filter"}
	case "Filter":
		return []string{"kinds", "stages"}
	case "Log":
		return []string{"level", "format"}
	case "Admin":
		return []string{"listen"}
	case "OAuth":
		return []string{"token_url", "client_id", "client_secret", "scope"}
	case "Login":
		return []string{"email", "password"}
	}
	return nil
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

func expandNode(n *yaml.Node, lookup func(string) (string, bool), fail func(int, string)) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
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
	return p.has(path...) && p.value(path...).Decode(&n) == nil
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
	c.State = c.resolve(c.State)
	for _, s := range c.Systems {
		if s.PageSize == 0 && !s.pageSizeSet {
			s.PageSize = 100
		}
		if s.Timeout == 0 {
			s.Timeout = 30 * time.Second
		}
		if s.Retries == 0 {
			s.Retries = 4
		}
		if s.RetryAfterMax == 0 {
			s.RetryAfterMax = 30 * time.Second
		}
		if s.Overlap == 0 {
			s.Overlap = time.Second
		}
		if s.Type == "bluerocktel" && s.Naming == "" {
			// camelCase, as the vendor's PHP SDK writes (bluerocktel/php-sdk
			// Create/UpdateProspectRequest send the Prospect entity's
			// camelCase properties). A Laravel server drops keys in a
			// spelling it does not validate and still answers 201, so the
			// default follows the vendor's own client (docs/apis.md §3).
			s.Naming = "camel"
		}
		if s.Type == "tribecrm" && s.UpdateMethod == "" {
			s.UpdateMethod = "post"
		}
		if s.Mapping != "" {
			s.Mapping = c.resolve(s.Mapping)
		}
	}
	for _, f := range c.Flows {
		if f.WriteConcurrency == 0 {
			f.WriteConcurrency = 4
		}
		if f.Schedule == "" {
			f.Schedule = "@every 5m"
		}
		if f.Deletes.Policy == "" {
			f.Deletes.Policy = "ignore"
		}
		if f.Deletes.MaxPerRun == 0 {
			f.Deletes.MaxPerRun = 50
		}
		if f.Deletes.ReconcileEvery == 0 {
			f.Deletes.ReconcileEvery = 24 * time.Hour
		}
		if f.MaxRetries == 0 {
			f.MaxRetries = 10
		}
	}
}

func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// ScheduleParser is the cron parser crmsync uses: standard 5 fields plus
// descriptors (@every 5m, @hourly, ...).
func ScheduleParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// validator collects the problems of one configuration file.
type validator struct {
	c    *Config
	pos  posIndex
	errs Errors
	// names are the configured systems, sorted, for "expected one of".
	names []string
}

func (v *validator) add(line int, format string, a ...any) {
	v.errs = append(v.errs, Error{v.c.File, line, fmt.Sprintf(format, a...)})
}

// validate checks the decoded, defaulted config and returns every problem,
// sorted by line (stable: problems on one line keep the order checked).
func (c *Config) validate(pos posIndex) Errors {
	v := &validator{c: c, pos: pos, names: c.SystemNames()}
	v.validateLog()
	v.validateState()
	v.validateAdmin()
	if c.ShutdownGrace <= 0 {
		v.add(c.graceLine, "shutdown_grace %s must be positive (expected e.g. 10s; it bounds how long a stop waits for the page in hand)", c.ShutdownGrace)
	}
	if len(c.Systems) < 2 {
		v.add(pos.line("systems"), "%d system(s) configured; a sync needs at least two (expected a systems: section naming a source and a target)", len(c.Systems))
	}
	for _, n := range v.names {
		v.validateSystem(n)
	}
	v.validateFlows()
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
	l := v.c.Admin.Listen
	if l == "" {
		return
	}
	const expected = `(expected e.g. 127.0.0.1:9090, or "" to disable the endpoint)`
	line := v.pos.line("admin", "listen")
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		why := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err
		}
		v.add(line, "admin.listen %q is not host:port: %s %s", l, why, expected)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(line, "admin.listen %q: port %q is not a number 0..65535 %s", l, port, expected)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil && !hostnameRe.MatchString(host) {
		v.add(line, "admin.listen %q: host %q is not an IP address or a host name %s", l, host, expected)
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

// validateConnection checks type, base_url and credentials.
func (v *validator) validateConnection(n string) {
	s := v.c.Systems[n]
	if !contains(Types(), s.Type) {
		v.add(v.sysLine(n, "type"), "systems.%s.type %q is not one of %s", n, s.Type, strings.Join(Types(), ", "))
	}
	if s.BaseURL == "" {
		v.add(s.line, "systems.%s.base_url is missing (expected e.g. http://127.0.0.1:8081)", n)
	} else if !strings.HasPrefix(s.BaseURL, "http://") && !strings.HasPrefix(s.BaseURL, "https://") {
		v.add(v.sysLine(n, "base_url"), "systems.%s.base_url %q must start with http:// or https://", n, s.BaseURL)
	}
	if s.Token == "" && s.OAuth == nil && s.Login == nil {
		v.add(s.line, "systems.%s has no credentials (expected token, or oauth for tribecrm, or login for bluerocktel)", n)
	}
	if s.OAuth != nil && s.Type != "tribecrm" {
		v.add(v.sysLine(n, "oauth"), "systems.%s.oauth is only supported for type tribecrm", n)
	}
	if s.Login != nil && s.Type != "bluerocktel" {
		v.add(v.sysLine(n, "login"), "systems.%s.login is only supported for type bluerocktel", n)
	}
}

// validateTypeOptions checks the keys that only one system type has.
func (v *validator) validateTypeOptions(n string) {
	s := v.c.Systems[n]
	if s.Naming != "" && s.Naming != "snake" && s.Naming != "camel" && s.Naming != "auto" {
		v.add(v.sysLine(n, "naming"), "systems.%s.naming %q is not snake, camel or auto", n, s.Naming)
	}
	if s.Naming != "" && s.Type != "bluerocktel" {
		v.add(v.sysLine(n, "naming"), "systems.%s.naming is only supported for type bluerocktel", n)
	}
	if s.ConvertPath != "" && s.Type != "bluerocktel" {
		v.add(v.sysLine(n, "convert_path"), "systems.%s.convert_path is only supported for type bluerocktel", n)
	}
	for k, st := range s.Stages {
		if s.Type != "tribecrm" || !contains([]string{"Suspect", "Lead", "HotProspect", "Prospect", "Customer"}, st) {
			v.add(v.pos.line("systems", n, "stages", strconv.Itoa(k)), "systems.%s.stages: %q is not a TribeCRM funnel stage (expected Suspect, Lead, HotProspect, Prospect or Customer; tribecrm only)", n, st)
		}
	}
	if s.UpgradeField != "" && (s.Type != "tribecrm" || (s.UpgradeField != "_Type" && s.UpgradeField != "_UpgradeType")) {
		v.add(v.sysLine(n, "upgrade_field"), "systems.%s.upgrade_field must be _Type or _UpgradeType, and only for type tribecrm", n)
	}
	if s.UpdateMethod != "" && (s.Type != "tribecrm" || !contains([]string{"post", "patch", "put"}, s.UpdateMethod)) {
		v.add(v.sysLine(n, "update_method"), "systems.%s.update_method %q must be post, patch or put, and only for type tribecrm", n, s.UpdateMethod)
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
	if s.PageSize < 1 || s.PageSize > 1000 {
		v.add(v.sysLine(n, "page_size"), "systems.%s.page_size %d is out of range (expected 1..1000)", n, s.PageSize)
	}
	if s.RateLimit < 0 {
		v.add(v.sysLine(n, "rate_limit"), "systems.%s.rate_limit must not be negative", n)
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
		{"timeout", s.Timeout, "0s for the default 30s, or a positive limit for one HTTP attempt"},
		{"retry_after_max", s.RetryAfterMax, "0s for the default 30s, or a positive cap on a server's Retry-After"},
		{"overlap", s.Overlap, "0s for the default 1s, or a positive re-read window behind the cursor"},
	} {
		if d.val < 0 {
			v.add(v.sysLine(n, d.key), "systems.%s.%s %s must not be negative (expected %s)", n, d.key, d.val, d.expect)
		}
	}
}

// validateFlows checks every flow, and that there is one.
func (v *validator) validateFlows() {
	if len(v.c.Flows) == 0 {
		v.add(0, "no flows configured (expected a flows: list)")
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
	} else if prev, dup := seen[f.Name]; dup {
		v.add(v.flowLine(i, "name"), "flow name %q is used twice (first at line %d)", f.Name, prev)
	} else {
		seen[f.Name] = v.flowLine(i, "name")
	}
	if _, ok := v.c.Systems[f.Source]; !ok {
		v.add(v.flowLine(i, "source"), "flows[%d].source %q is not a configured system (expected one of: %s)", i, f.Source, strings.Join(v.names, ", "))
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
	if f.WriteConcurrency < 1 || f.WriteConcurrency > 64 {
		v.add(v.flowLine(i, "write_concurrency"), "flows[%d].write_concurrency %d is out of range (expected 1..64)", i, f.WriteConcurrency)
	}
}

// validateTargets checks flows[i].targets: each a configured system other
// than the source, listed once, with a valid filter.
func (v *validator) validateTargets(i int) {
	f := v.c.Flows[i]
	if len(f.Targets) == 0 {
		v.add(f.line, "flow %q has no targets", f.Name)
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
			v.add(at, "flows[%d].targets[%d].system %q is not a configured system (expected one of: %s)", i, j, t.System, strings.Join(v.names, ", "))
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
		if kind != "organization" && kind != "person" {
			v.add(v.flowLine(i, "targets", tj, "filter", "kinds", strconv.Itoa(k)), "kind %q is not organization or person", kind)
		}
	}
	for k, st := range flt.Stages {
		if !contains([]string{"suspect", "lead", "hot_prospect", "prospect", "customer"}, st) {
			v.add(v.flowLine(i, "targets", tj, "filter", "stages", strconv.Itoa(k)), "stage %q is not one of suspect, lead, hot_prospect, prospect, customer", st)
		}
	}
}

// validateDeletes checks flows[i].deletes.
func (v *validator) validateDeletes(i int) {
	d := v.c.Flows[i].Deletes
	switch d.Policy {
	case "ignore", "close", "delete":
	default:
		v.add(v.flowLine(i, "deletes", "policy"), "flows[%d].deletes.policy %q is not one of ignore, close, delete", i, d.Policy)
	}
	if d.MaxPerRun < 0 {
		v.add(v.flowLine(i, "deletes", "max_per_run"), "flows[%d].deletes.max_per_run must not be negative", i)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
