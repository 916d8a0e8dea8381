package config

import (
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const good = `state: s.db
systems:
  a:
    type: tribecrm
    base_url: http://127.0.0.1:1
    token: ${A_TOKEN:-dev-token}
    mapping: m.yaml
  b:
    type: overplane
    base_url: http://127.0.0.1:2
    token: t
    mapping: m.yaml
flows:
  - name: f
    source: a
    targets: [{system: b}]
`

func noEnv(string) (string, bool) { return "", false }

func TestExampleConfigLoads(t *testing.T) {
	// The shipped example must stay valid: this test keeps it from going stale.
	cfg, err := Load("../config.example.yaml", builtin.Registry())
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if len(cfg.Flows) == 0 || cfg.Flows[0].Source != "tribecrm" || len(cfg.Flows[0].Targets) < 2 {
		t.Fatalf("example should hold a flow from tribecrm to both other systems, got %+v", cfg.Flows)
	}
	for name, s := range cfg.Systems {
		if s.Token.Value() != "dev-token" && os.Getenv(strings.ToUpper(name)+"_TOKEN") == "" {
			t.Errorf("systems.%s.token defaults to %q, want dev-token", name, s.Token.Value())
		}
	}
}

func TestDefaultsExpansionAndRelativePaths(t *testing.T) {
	dir := writeFiles(t, map[string]string{"c.yaml": good, "m.yaml": "x"})
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(good), noEnv, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Systems["a"].Token.Value(); got != "dev-token" {
		t.Errorf("token = %q, want default dev-token", got)
	}
	if cfg.Systems["a"].Token.String() != "[REDACTED]" {
		t.Errorf("Secret prints its value")
	}
	if cfg.State != filepath.Join(dir, "s.db") || cfg.Systems["a"].Mapping != filepath.Join(dir, "m.yaml") {
		t.Errorf("relative paths not resolved against the config dir: %s %s", cfg.State, cfg.Systems["a"].Mapping)
	}
	cfg, err = Parse(filepath.Join(dir, "c.yaml"), []byte(good), func(k string) (string, bool) { return "from-env", k == "A_TOKEN" }, builtin.Registry())
	if err != nil || cfg.Systems["a"].Token.Value() != "from-env" {
		t.Fatalf("env value not used: %v %v", err, cfg)
	}
}

func TestErrorsNameFileLineAndExpectation(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", strings.Replace(good, "    token: t\n", "    token: t\n    tokn: x\n", 1), `c.yaml:12: unknown key "tokn" in a system of type overplane; did you mean "token"?`},
		{"wrong type", strings.Replace(good, "state: s.db", "state: s.db\nlog: [1]", 1), "c.yaml:2: log: found a list; expected a section of keys"},
		{"unknown source", strings.Replace(good, "source: a", "source: zz", 1), `c.yaml:15: flows[0].source "zz" is not a configured system (expected one of: a, b)`},
		{"bad cron", strings.Replace(good, "    source: a\n", "    source: a\n    schedule: every day\n", 1), `c.yaml:16: flows[0].schedule "every day" is not a cron expression`},
		{"unset env", strings.Replace(good, "${A_TOKEN:-dev-token}", "${NOPE_TOKEN}", 1), "c.yaml:6: environment variable NOPE_TOKEN is not set"},
		{"bad type", strings.Replace(good, "type: overplane", "type: hubspot", 1), `c.yaml:9: systems.b.type "hubspot" is not one of bluerocktel, overplane, tribecrm`},
		{"missing mapping file", strings.Replace(good, "mapping: m.yaml\n  b", "mapping: nope.yaml\n  b", 1), "c.yaml:7: systems.a.mapping: cannot read"},
		{"empty", "", "c.yaml: the file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tc.yaml), noEnv, builtin.Registry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	bad := strings.Replace(strings.Replace(good, "source: a", "source: zz", 1), "type: overplane", "type: hubspot", 1)
	_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(bad), noEnv, builtin.Registry())
	if err == nil || strings.Count(err.Error(), "\n") < 1 {
		t.Fatalf("want two problems reported together, got %v", err)
	}
}

func TestShutdownGrace(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	file := filepath.Join(dir, "c.yaml")
	for _, tc := range []struct {
		name, top string
		want      time.Duration
	}{
		{"absent", "", DefaultShutdownGrace},
		{"empty value", "shutdown_grace:\n", DefaultShutdownGrace},
		{"set", "shutdown_grace: 1m30s\n", 90 * time.Second},
		{"short", "shutdown_grace: 250ms\n", 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(file, []byte(tc.top+good), noEnv, builtin.Registry())
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ShutdownGrace != tc.want {
				t.Errorf("ShutdownGrace = %s, want %s", cfg.ShutdownGrace, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, top, want string }{
		{"zero", "shutdown_grace: 0s\n", "c.yaml:2: shutdown_grace 0s must be positive (expected e.g. 10s"},
		{"negative", "shutdown_grace: -5s\n", "c.yaml:2: shutdown_grace -5s must be positive"},
		{"no unit", "shutdown_grace: 10\n", "c.yaml:2: shutdown_grace: 10 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)"},
		{"day unit", "shutdown_grace: 1d\n", `c.yaml:2: shutdown_grace: "1d" is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)`},
		{"misspelt", "shutdown_grase: 10s\n", `c.yaml:2: unknown top-level key "shutdown_grase"; did you mean "shutdown_grace"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// good starts with "state: s.db"; the key goes on line 2.
			text := strings.Replace(good, "state: s.db\n", "state: s.db\n"+tc.top, 1)
			_, err := Parse(file, []byte(text), noEnv, builtin.Registry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}

// inSystemA puts lines into systems.a of good, after its token: the first
// of them is on line 7.
func inSystemA(lines string) string {
	return strings.Replace(good, "    token: ${A_TOKEN:-dev-token}\n", "    token: ${A_TOKEN:-dev-token}\n"+lines, 1)
}

// withAdmin gives good an admin section: its listen key is on line 3.
func withAdmin(listen string) string {
	return strings.Replace(good, "state: s.db\n", "state: s.db\nadmin:\n  listen: "+listen+"\n", 1)
}

// TestValuesOnceAcceptedSilently: each of these used to pass validation
// and be taken as a default or passed on as it was (issue 11); each is now
// an error with its file:line, what is wrong and what is expected.
func TestValuesOnceAcceptedSilently(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x", "statedir/.keep": ""})
	file := filepath.Join(dir, "c.yaml")
	for _, tc := range []struct{ name, yaml, want string }{
		{"negative burst", inSystemA("    burst: -1\n"),
			"c.yaml:7: systems.a.burst -1 must not be negative (expected 0 for the default or a positive token-bucket size)"},
		{"negative timeout", inSystemA("    timeout: -5s\n"),
			"c.yaml:7: systems.a.timeout -5s must not be negative (expected 0s for the default 30s, or a positive limit for one HTTP attempt)"},
		{"negative retry_after_max", inSystemA("    retry_after_max: -1s\n"),
			"c.yaml:7: systems.a.retry_after_max -1s must not be negative (expected 0s for the default 30s, or a positive cap on a server's Retry-After)"},
		{"negative overlap", inSystemA("    overlap: -500ms\n"),
			"c.yaml:7: systems.a.overlap -500ms must not be negative (expected 0s for the default 1s, or a positive re-read window behind the cursor)"},
		{"explicit page_size 0", inSystemA("    page_size: 0\n"),
			"c.yaml:7: systems.a.page_size 0 is out of range (expected 1..1000; leave it out for 100)"},
		{"negative page_size", inSystemA("    page_size: -3\n"),
			"c.yaml:7: systems.a.page_size -3 is out of range (expected 1..1000; leave it out for 100)"},
		{"listen without port", withAdmin("localhost"),
			`c.yaml:3: admin.listen "localhost" is not host:port: missing port in address (expected e.g. 127.0.0.1:9090, or "" to disable the endpoint)`},
		{"listen as a URL", withAdmin("http://127.0.0.1:9090"),
			`c.yaml:3: admin.listen "http://127.0.0.1:9090" is not host:port: too many colons in address (expected e.g. 127.0.0.1:9090, or "" to disable the endpoint)`},
		{"listen port out of range", withAdmin("127.0.0.1:99999"),
			`c.yaml:3: admin.listen "127.0.0.1:99999": port "99999" is not a number 0..65535 (expected e.g. 127.0.0.1:9090, or "" to disable the endpoint)`},
		{"listen port by name", withAdmin("127.0.0.1:http"),
			`c.yaml:3: admin.listen "127.0.0.1:http": port "http" is not a number 0..65535`},
		{"listen empty port", withAdmin(`"127.0.0.1:"`),
			`c.yaml:3: admin.listen "127.0.0.1:": port "" is not a number 0..65535`},
		{"listen bad host", withAdmin(`"local host:9090"`),
			`c.yaml:3: admin.listen "local host:9090": host "local host" is not an IP address or a host name (expected e.g. 127.0.0.1:9090, or "" to disable the endpoint)`},
		{"state is a directory", strings.Replace(good, "state: s.db", "state: statedir", 1),
			"c.yaml:1: state " + filepath.Join(dir, "statedir") + " is a directory (expected the path of a file, e.g. " + filepath.Join(dir, "statedir", "crmsync.db") + "; a missing file is created)"},
		{"state under a file", strings.Replace(good, "state: s.db", "state: m.yaml/s.db", 1),
			"c.yaml:1: state " + filepath.Join(dir, "m.yaml", "s.db") + ": " + filepath.Join(dir, "m.yaml") + " is not a directory (expected the path of a file in a directory; missing directories are created)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(tc.yaml), noEnv, builtin.Registry())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}

// TestDefaultsAndLimitsStillAccepted: what the checks above must not catch.
func TestDefaultsAndLimitsStillAccepted(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	file := filepath.Join(dir, "c.yaml")
	for _, tc := range []struct {
		name, yaml string
		check      func(*Config) bool
	}{
		// 0 is "the default": connectors.DefaultPageSize, applied by the
		// connector (and httpx's defaults by httpx), not copied here.
		{"page_size absent", good, func(c *Config) bool { return c.Systems["a"].PageSize == 0 }},
		{"page_size empty", inSystemA("    page_size:\n"), func(c *Config) bool { return c.Systems["a"].PageSize == 0 }},
		{"page_size null", inSystemA("    page_size: ~\n"), func(c *Config) bool { return c.Systems["a"].PageSize == 0 }},
		{"page_size bounds", inSystemA("    page_size: 1\n") + "", func(c *Config) bool { return c.Systems["a"].PageSize == 1 }},
		{"page_size 1000", inSystemA("    page_size: 1000\n"), func(c *Config) bool { return c.Systems["a"].PageSize == 1000 }},
		{"zeros mean the defaults", inSystemA("    burst: 0\n    timeout: 0s\n    retries: 0\n    retry_after_max: 0s\n    overlap: 0s\n"), func(c *Config) bool {
			s := c.Systems["a"]
			return s.Burst == 0 && s.Timeout == 0 && s.Retries == 0 && s.RetryAfterMax == 0 && s.Overlap == 0
		}},
		{"negative retries turn retries off", inSystemA("    retries: -1\n"), func(c *Config) bool { return c.Systems["a"].Retries == -1 }},
		{"listen disabled", withAdmin(`""`), func(c *Config) bool { return c.Admin.Listen == "" }},
		{"listen loopback", withAdmin("127.0.0.1:9090"), func(c *Config) bool { return c.Admin.Listen == "127.0.0.1:9090" }},
		{"listen all interfaces", withAdmin(`":9090"`), func(c *Config) bool { return c.Admin.Listen == ":9090" }},
		{"listen IPv6", withAdmin(`"[::1]:9090"`), func(c *Config) bool { return c.Admin.Listen == "[::1]:9090" }},
		{"listen host name, any free port", withAdmin("localhost:0"), func(c *Config) bool { return c.Admin.Listen == "localhost:0" }},
		{"state in missing directories", strings.Replace(good, "state: s.db", "state: new/sub/s.db", 1), func(c *Config) bool {
			return c.State == filepath.Join(dir, "new", "sub", "s.db")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(file, []byte(tc.yaml), noEnv, builtin.Registry())
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Errorf("unexpected config: %+v %+v", cfg, cfg.Systems["a"])
			}
		})
	}
}

// TestPageSizeTypeErrorReportedOnce: a page_size that does not decode (here
// the documented ${VAR} mistake) gives the decoder's error only, not also
// "page_size 0 is out of range" for the zero it decoded to.
func TestPageSizeTypeErrorReportedOnce(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(inSystemA("    page_size: ${PAGE:-100}\n")), noEnv, builtin.Registry())
	if err == nil || !strings.Contains(err.Error(), `c.yaml:7: page_size: found the text "${PAGE:-100}"; expected a whole number`) || strings.Contains(err.Error(), "out of range") {
		t.Fatalf("want only the decode error at line 7, got\n%v", err)
	}
	if n := len(err.(Errors)); n != 1 {
		t.Fatalf("want one error, got %d:\n%v", n, err)
	}
}

// TestTypeKeysDecodedAndCheckedByTheirType: a system's type-specific keys
// are decoded by its registered type, with its defaults, and their
// problems name file:line, what is wrong and what was expected; a key of
// another type is an unknown key listing what this type takes.
func TestTypeKeysDecodedAndCheckedByTheirType(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	file := filepath.Join(dir, "c.yaml")
	cfg, err := Parse(file, []byte(inSystemA("    stages: [Lead]\n    oauth:\n      client_id: id\n      client_secret: ${SECRET:-s3cr3t-value}\n")), noEnv, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := cfg.Systems["a"].Options.(*tribecrm.Config)
	if !ok {
		t.Fatalf("systems.a options are %T, want *tribecrm.Config", cfg.Systems["a"].Options)
	}
	if tc.UpdateMethod != tribecrm.UpdatePost || len(tc.Stages) != 1 || tc.OAuth == nil || tc.OAuth.ClientSecret.Value() != "s3cr3t-value" {
		t.Errorf("decoded options: %+v", tc)
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"bad stage", inSystemA("    stages:\n      - Lead\n      - Won\n"), `c.yaml:9: systems.a.stages.1 "Won" is not a TribeCRM funnel stage (expected Suspect, Lead, HotProspect, Prospect, Customer)`},
		{"bad update method", inSystemA("    update_method: merge\n"), `c.yaml:7: systems.a.update_method "merge" must be post, patch or put`},
		{"other type's key", inSystemA("    naming: snake\n"), `c.yaml:7: unknown key "naming" in a system of type tribecrm; expected one of: type, base_url, token, mapping, page_size, rate_limit, burst, timeout, retries, retry_after_max, overlap, webhook_secret, oauth, upgrade_field, stages, update_method`},
		{"nested unknown key", inSystemA("    oauth:\n      client: x\n"), `c.yaml:8: unknown key "client" in oauth; did you mean "client_id"?`},
		{"no credentials", strings.Replace(good, "    token: t\n", "", 1), `c.yaml:8: systems.b has no credentials (expected token: the API key)`},
		{"type error in a type key", inSystemA("    stages: Lead\n"), `c.yaml:7: stages: found the text "Lead"; expected a list (one - item per line, or [a, b])`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(file, []byte(c.yaml), noEnv, builtin.Registry())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error\n%v\nwant it to contain\n%s", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("a secret in the error: %v", err)
			}
		})
	}
}

// TestYAMLProblemsReportedOnce: keys written twice, syntax errors and
// values of the wrong type are each one message at the line at fault,
// naming the key, with nothing else reported because of them (a mapping
// with a duplicate key used to be dropped whole by yaml.v3, each of its keys
// then reported missing).
func TestYAMLProblemsReportedOnce(t *testing.T) {
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	file := filepath.Join(dir, "c.yaml")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"top-level key twice", strings.Replace(good, "state: s.db\n", "state: s.db\nstate: t.db\n", 1),
			[]string{`c.yaml:2: key "state" is written twice (first at line 1); keep one`}},
		{"system key twice", strings.Replace(good, "    base_url: http://127.0.0.1:1\n", "    base_url: http://127.0.0.1:1\n    base_url: http://127.0.0.1:3\n", 1),
			[]string{`c.yaml:6: key "base_url" is written twice (first at line 5); keep one`}},
		{"type key twice", inSystemA("    oauth:\n      client_id: x\n      client_id: y\n      client_secret: z\n"),
			[]string{`c.yaml:9: key "client_id" is written twice (first at line 8); keep one`}},
		{"flow key twice", good + "    schedule: \"@every 1m\"\n    schedule: \"@every 2m\"\n",
			[]string{`c.yaml:18: key "schedule" is written twice (first at line 17); keep one`}},
		{"tab", strings.Replace(good, "    token: t\n", "\ttoken: t\n", 1),
			[]string{"c.yaml:11: invalid YAML: found a tab character that violates indentation (indent with spaces, not tabs)"}},
		{"list left open", strings.Replace(good, "[{system: b}]", "[{system: b}", 1) + "  - name: g\n    source: b\n    targets: [{system: a}]\n",
			[]string{"c.yaml:16: invalid YAML: did not find expected ',' or ']'"}},
		{"misindented key", strings.Replace(good, "    base_url: http://127.0.0.1:1\n", "   base_url: http://127.0.0.1:1\n", 1),
			[]string{"c.yaml:5: invalid YAML: did not find expected key"}},
		{"second document", good + "---\nstate: other.db\n",
			[]string{`c.yaml:17: a second YAML document starts here; a configuration file holds exactly one (remove the "---" separator)`}},
		{"flows not a list", strings.Replace(good, "flows:\n  - name: f\n    source: a\n    targets: [{system: b}]\n", "flows: f\n", 1),
			[]string{`c.yaml:13: flows: found the text "f"; expected a list (one - item per line, or [a, b])`}},
		{"misspelt flow key", good + "    schedul: \"@every 1m\"\n",
			[]string{`c.yaml:17: unknown key "schedul" in a flow; did you mean "schedule"?`}},
		{"a list, not keys", "- state: s.db\n",
			[]string{"c.yaml:1: the file holds a list (expected keys state, systems, flows)"}},
		{"only a document marker", "---\n",
			[]string{"c.yaml: the file is empty (expected keys state, systems, flows)"}},
		{"bool as text", good + "    allow_stage_back: nope\n",
			[]string{`c.yaml:17: allow_stage_back: found the text "nope"; expected true or false`}},
		{"duration without a unit", good + "    deletes:\n      reconcile_every: 30\n",
			[]string{"c.yaml:18: reconcile_every: 30 is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(file, []byte(tc.yaml), noEnv, builtin.Registry())
			if err == nil {
				t.Fatal("accepted")
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Errorf("problems differ\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

// TestYAMLThatPanicsYAMLv3: a merge key beside a key that is a list makes
// yaml.v3 panic (it hashes the list); loading the file reports it instead.
func TestYAMLThatPanicsYAMLv3(t *testing.T) {
	_, err := Parse("c.yaml", []byte("state: s.db\nlog: {<<, [0]}\n"), noEnv, builtin.Registry())
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: <<: found nothing; expected a section of keys to merge in") {
		t.Fatalf("got %v", err)
	}
}
