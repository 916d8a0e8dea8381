package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/buildinfo"
)

const alertsDir = "../contrib/prometheus"

// The example alert rules read only series a freshly started daemon serves,
// before its first run ends: an alert on a series that appears only later
// (or was renamed) silently never fires.
func TestAlertRulesReadSeriesServedFromStartUp(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(alertsDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	m := New(buildinfo.Read())
	m.Prime([]Flow{{Name: "f", Source: "tribecrm", Targets: []string{"overplane"}}})
	// A flow with history: its last success and attempt come from state.
	exposed := scrape(t, m)
	name := regexp.MustCompile(`crmsync_[a-z_]+`)
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			for _, metric := range name.FindAllString(r.Expr, -1) {
				n++
				if metric == "crmsync_last_success_timestamp_seconds" || metric == "crmsync_http_requests_total" {
					continue // present once there is a success / an HTTP attempt; checked below
				}
				if !strings.Contains(exposed, "\n"+metric+"{") {
					t.Errorf("alert %s reads %s, which a daemon does not serve at start-up", r.Alert, metric)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no crmsync series in the alert rules")
	}
	m.HTTP("tribecrm", "GET", 401, 0)
	if !strings.Contains(scrape(t, m), `crmsync_http_requests_total{code="401",method="GET",system="tribecrm"} 1`) {
		t.Error("the credentials alert's series is missing after a 401")
	}
}

// promtool (Debian's prometheus package; .ci/run installs it) checks the
// rules' syntax and runs their unit tests: each alert fires when it should.
func TestAlertRulesPassPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); the alert rules' syntax and unit tests were not run")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = alertsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
