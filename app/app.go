// Package app wires a loaded configuration into running parts: one HTTP
// client and connector per system, the compiled mappings, the state store
// and the engine. It is the composition root shared by the CLI commands and
// the daemon; it holds no sync logic of its own.
package app

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// App is a configured crmsync.
type App struct {
	Cfg     *config.Config
	Store   *state.Store
	Engine  *engine.Engine
	Systems map[string]*engine.System
	Log     zerolog.Logger
}

// Options tunes Open.
type Options struct {
	// StatePath overrides the config's state file when non-empty.
	StatePath string
	// ReadOnly opens the state read-only (status, plan).
	ReadOnly bool
	Metrics  engine.Metrics
	// Observe is passed to every system's HTTP client (metrics).
	Observe func(system, method string, status int, d time.Duration)
}

// Open builds every part. The caller must Close the App.
func Open(cfg *config.Config, log zerolog.Logger, o Options) (*App, error) {
	systems, err := BuildSystems(cfg, log, o.Observe)
	if err != nil {
		return nil, err
	}
	path := cfg.State
	if o.StatePath != "" {
		path = o.StatePath
	}
	st, err := state.Open(path, state.Options{Timeout: time.Second, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{Systems: systems, Store: st, Logger: log, Metrics: o.Metrics})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &App{Cfg: cfg, Store: st, Engine: eng, Systems: systems, Log: log}, nil
}

// Close releases the state file.
func (a *App) Close() error { return a.Store.Close() }

// BuildSystems compiles every system's mapping and builds its connector.
// Mapping errors of all systems are reported together.
func BuildSystems(cfg *config.Config, log zerolog.Logger, observe func(system, method string, status int, d time.Duration)) (map[string]*engine.System, error) {
	out := map[string]*engine.System{}
	var errs []error
	for _, name := range cfg.SystemNames() {
		sc := cfg.Systems[name]
		m, err := mapping.Load(sc.Mapping)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m.System != sc.Type {
			errs = append(errs, fmt.Errorf("%s: mapping is for system %q but systems.%s.type is %q", sc.Mapping, m.System, name, sc.Type))
			continue
		}
		conn, err := BuildConnector(name, sc, m, log, observe)
		if err != nil {
			errs = append(errs, fmt.Errorf("systems.%s: %w", name, err))
			continue
		}
		out[name] = &engine.System{Name: name, Conn: conn, Map: m, PageSize: sc.PageSize}
	}
	if len(errs) == 0 {
		for _, field := range funnel.FieldNames() {
			var owners []string
			for _, name := range cfg.SystemNames() {
				if out[name].Map.Owns(field) {
					owners = append(owners, out[name].Map.File)
				}
			}
			if len(owners) > 1 {
				errs = append(errs, fmt.Errorf("canonical field %s has more than one owner (owner: true in %s); at most one system may own a field", field, strings.Join(owners, " and ")))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// BuildConnector builds the connector of one configured system; m is its
// compiled mapping.
func BuildConnector(name string, sc *config.System, m *mapping.Mapping, log zerolog.Logger, observe func(system, method string, status int, d time.Duration)) (connectors.Connector, error) {
	hopts := httpx.Options{
		System:        name,
		Timeout:       sc.Timeout,
		RetryMax:      sc.Retries,
		RetryAfterMax: sc.RetryAfterMax,
		RateLimit:     sc.RateLimit,
		Burst:         sc.Burst,
		Logger:        log,
	}
	if observe != nil {
		hopts.Observe = func(method string, status int, d time.Duration) { observe(name, method, status, d) }
	}
	clog := log.With().Str("system", name).Logger()
	base := strings.TrimRight(sc.BaseURL, "/")
	switch sc.Type {
	case tribecrm.System:
		hopts.ErrorMessage = tribecrm.ErrorMessage
		hc := httpx.New(hopts)
		hc.AddSecret(sc.Token.Value())
		o := tribecrm.Options{BaseURL: base, Token: sc.Token.Value(), HTTP: hc, Logger: clog,
			PageSize: sc.PageSize, Overlap: sc.Overlap, UpgradeField: sc.UpgradeField, Stages: sc.Stages, UpdateMethod: sc.UpdateMethod}
		if sc.OAuth != nil {
			hc.AddSecret(sc.OAuth.ClientSecret.Value())
			o.ClientID, o.ClientSecret, o.TokenURL, o.Scope = sc.OAuth.ClientID, sc.OAuth.ClientSecret.Value(), sc.OAuth.TokenURL, sc.OAuth.Scope
		}
		return tribecrm.New(o)
	case overplane.System:
		hopts.ErrorMessage = overplane.ErrorMessage
		hc := httpx.New(hopts)
		hc.AddSecret(sc.Token.Value())
		// Child rows cost two requests per prospect: read them only when
		// the mapping uses them.
		children := m.UsesNative("leads") || m.UsesNative("opportunities")
		return overplane.New(overplane.Options{BaseURL: base, Token: sc.Token.Value(), HTTP: hc, Logger: clog, NoChildren: !children, PageSize: sc.PageSize})
	case bluerocktel.System:
		hopts.ErrorMessage = bluerocktel.ErrorMessage
		hc := httpx.New(hopts)
		hc.AddSecret(sc.Token.Value())
		o := bluerocktel.Options{BaseURL: base, Token: sc.Token.Value(), HTTP: hc, Logger: clog,
			PageSize: sc.PageSize, Overlap: sc.Overlap, Naming: bluerocktel.Naming(sc.Naming), ConvertPath: sc.ConvertPath}
		if sc.Login != nil {
			hc.AddSecret(sc.Login.Password.Value())
			o.Email, o.Password = sc.Login.Email, sc.Login.Password.Value()
		}
		return bluerocktel.New(o)
	}
	return nil, fmt.Errorf("unknown system type %q", sc.Type)
}

// Flow converts a configured flow for the engine. A target that is also
// the source of some flow (two-way sync) is read before each update, so
// edits made there are merged instead of overwritten.
func Flow(cfg *config.Config, f *config.Flow) engine.Flow {
	ef := engine.Flow{Name: f.Name, Source: f.Source, WriteConcurrency: f.WriteConcurrency, AllowStageBack: f.AllowStageBack,
		MatchKeys: f.Match, MaxRetries: f.MaxRetries,
		Deletes: engine.DeletePolicy{Mode: f.Deletes.Policy, MaxPerRun: f.Deletes.MaxPerRun, Every: f.Deletes.ReconcileEvery}}
	sources := map[string]bool{}
	for _, other := range cfg.Flows {
		sources[other.Source] = true
	}
	for _, t := range f.Targets {
		et := engine.Target{System: t.System, CheckBeforeWrite: sources[t.System]}
		for _, k := range t.Filter.Kinds {
			et.Kinds = append(et.Kinds, funnel.Kind(k))
		}
		for _, s := range t.Filter.Stages {
			et.Stages = append(et.Stages, funnel.Stage(s))
		}
		ef.Targets = append(ef.Targets, et)
	}
	return ef
}

// Flows returns the configured flows named (all when names is empty), or an
// error naming the unknown ones.
func Flows(cfg *config.Config, names []string) ([]engine.Flow, error) {
	if len(names) == 0 {
		out := make([]engine.Flow, 0, len(cfg.Flows))
		for _, f := range cfg.Flows {
			out = append(out, Flow(cfg, f))
		}
		return out, nil
	}
	var out []engine.Flow
	var unknown []string
	for _, n := range names {
		f, ok := cfg.Flow(n)
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		out = append(out, Flow(cfg, f))
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(cfg.Flows))
		for _, f := range cfg.Flows {
			known = append(known, f.Name)
		}
		return nil, fmt.Errorf("unknown flow %s (configured: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}
