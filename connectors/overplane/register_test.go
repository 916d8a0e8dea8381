package overplane

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

// child_max_age reaches the client built from a configuration: by default
// an idle re-scan reads no child table; negative turns the cache off, and
// every scan reads both child tables of every prospect again.
func TestChildMaxAgeConfigKey(t *testing.T) {
	t.Parallel()
	def := &Config{}
	def.Default()
	if def.ChildMaxAge != DefaultChildMaxAge {
		t.Errorf("default child_max_age %s, want %s", def.ChildMaxAge, DefaultChildMaxAge)
	}
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		want   func(children int) bool
	}{
		{"default", def.ChildMaxAge, func(n int) bool { return n == 0 }},
		{"two hours", 2 * time.Hour, func(n int) bool { return n == 0 }},
		{"negative: off", -time.Second, func(n int) bool { return n >= 2*20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ce := newCountingEnv(t, 20, 0)
			cfg := &Config{ChildMaxAge: tc.maxAge}
			cfg.Default()
			if p := cfg.Check(connectors.Settings{Token: "dev-token"}); len(p) != 0 {
				t.Fatalf("child_max_age %s: %v", tc.maxAge, p)
			}
			conn, err := Type().New(context.Background(), connectors.Settings{Name: "op", BaseURL: ce.srv.URL, Token: "dev-token", Logger: zerolog.Nop()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := conn.(*Client)
			_, cur, _ := scan(t, c, nil, 0)
			ce.take()
			scan(t, c, cur, 0)
			if _, children := ce.take(); !tc.want(children) {
				t.Errorf("child_max_age %s: idle re-scan of 20 prospects made %d child-table GETs", tc.maxAge, children)
			}
		})
	}
}
