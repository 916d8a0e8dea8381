// Package app wires a loaded configuration into running parts: one
// connector per system (built by its registered type), the compiled
// mappings, the state store and the engine. It is the composition root
// shared by the CLI commands and the daemon; it holds no sync logic of its
// own and names no system type.
package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

// App is a configured crmsync.
type App struct {
	Cfg     *config.Config
	Store   state.Storage
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
	st, err := OpenState(context.Background(), path, o.ReadOnly)
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

// OpenState opens the configured state: a postgres:// or postgresql://
// URL opens the PostgreSQL engine (state/pgstate, migrating its schema
// unless readOnly), anything else the bbolt file at that path.
func OpenState(ctx context.Context, path string, readOnly bool) (state.Storage, error) {
	if state.IsURL(path) {
		return pgstate.Open(ctx, path, pgstate.Options{ReadOnly: readOnly})
	}
	return state.Open(path, state.Options{Timeout: time.Second, ReadOnly: readOnly})
}

// Close releases the state file.
func (a *App) Close() error { return a.Store.Close() }

// BuildSystems compiles every system's mapping and builds its connector.
// Mapping errors of all systems are reported together, and the engine's
// rules over all of them (field ownership) are checked.
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
		conn, err := BuildConnector(cfg, name, m, log, observe)
		if err != nil {
			errs = append(errs, fmt.Errorf("systems.%s: %w", name, err))
			continue
		}
		out[name] = &engine.System{Name: name, Conn: conn, Map: m, PageSize: sc.PageSize}
	}
	if len(errs) == 0 {
		if err := engine.CheckSystems(out); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// BuildConnector builds the connector of the configured system name, by
// its registered type; m is its compiled mapping.
func BuildConnector(cfg *config.Config, name string, m *mapping.Mapping, log zerolog.Logger, observe func(system, method string, status int, d time.Duration)) (connectors.Connector, error) {
	sc := cfg.Systems[name]
	t, ok := cfg.Types().Lookup(sc.Type)
	if !ok {
		return nil, fmt.Errorf("unknown system type %q (known: %s)", sc.Type, strings.Join(cfg.Types().Names(), ", "))
	}
	s := sc.Settings()
	s.Logger = log
	if observe != nil {
		s.HTTP.Observe = func(method string, status int, d time.Duration) { observe(name, method, status, d) }
	}
	if m != nil {
		s.UsesNative = m.UsesNative
	}
	return t.New(context.Background(), s, sc.Options)
}

// Flow converts a configured flow for the engine, which decides what the
// other flows mean for it (two-way sync).
func Flow(cfg *config.Config, f *config.Flow) engine.Flow {
	return engine.TwoWay(flow(f), sources(cfg))
}

func flow(f *config.Flow) engine.Flow {
	ef := engine.Flow{Name: f.Name, Source: f.Source, WriteConcurrency: f.WriteConcurrency, AllowStageBack: f.AllowStageBack,
		MatchKeys: f.Match, MaxRetries: f.MaxRetries,
		Deletes: engine.DeletePolicy{Mode: f.Deletes.Policy, MaxPerRun: f.Deletes.MaxPerRun, Every: f.Deletes.ReconcileEvery}}
	for _, t := range f.Targets {
		ef.Targets = append(ef.Targets, engine.Target{System: t.System, Kinds: t.Filter.Kinds, Stages: t.Filter.Stages})
	}
	return ef
}

// sources lists the source system of every configured flow.
func sources(cfg *config.Config) []string {
	out := make([]string, 0, len(cfg.Flows))
	for _, f := range cfg.Flows {
		out = append(out, f.Source)
	}
	return out
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
