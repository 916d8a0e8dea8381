package bench_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/bench"
)

// crmsyncBinary builds the crmsync command the bench runs as its children.
func crmsyncBinary(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "crmsync")
	out, err := exec.Command("go", "build", "-o", exe, "github.com/crmsync/crmsync").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// TestBenchMeasuresEngineRerunAndPlainLoop runs the bench end to end at 200
// records into both targets: every figure is in the JSON, the unchanged
// re-run writes nothing, the engine and the plain loop each created the
// records the filters let through, and the create ceiling sent its creates.
func TestBenchMeasuresEngineRerunAndPlainLoop(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	rep, err := bench.Run(t.Context(), bench.Options{Exe: crmsyncBinary(t), Assets: os.DirFS(root), Sizes: []int{200},
		Targets: []string{"bluerocktel", "overplane"}, Dir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sizes []map[string]any `json:"sizes"`
	}
	if err := json.Unmarshal(data, &doc); err != nil || len(doc.Sizes) != 1 {
		t.Fatalf("report %s: %v", data, err)
	}
	size := doc.Sizes[0]
	for _, k := range []string{"records", "writes", "state_bytes", "state_bytes_per_record", "ratio", "ceiling_ratio"} {
		if v, ok := size[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, size[k])
		}
	}
	for _, arm := range []string{"engine", "rerun", "plain"} {
		m, _ := size[arm].(map[string]any)
		for _, k := range []string{"seconds", "records_per_s", "cpu_s", "cpu_per_record_us", "peak_rss_bytes", "requests", "reads", "requests_per_record"} {
			if v, ok := m[k].(float64); !ok || v <= 0 {
				t.Errorf("%s.%s = %v, want a positive number", arm, k, m[k])
			}
		}
	}
	s := rep.Sizes[0]
	// The create ceiling sends the records the engine created, no more.
	if s.Ceiling.Created != s.Writes || s.Ceiling.Seconds <= 0 || s.Ceiling.CreatesPerSecond <= 0 {
		t.Errorf("create ceiling %+v, want the engine's %d creates in a positive time", s.Ceiling, s.Writes)
	}
	if s.Rerun.Writes != 0 || s.Rerun.Synced != 0 {
		t.Errorf("unchanged re-run: %d write requests, %d writes counted by crmsync; want 0", s.Rerun.Writes, s.Rerun.Synced)
	}
	// 200 TribeCRM records: each into BlueRockTel, the organisations also
	// into Overplane.
	if s.Writes <= 200 || s.Plain.Synced != s.Writes || s.Engine.Writes < int64(s.Writes) {
		t.Errorf("creates: engine %d (%d write requests), plain loop %d; want the same, more than 200", s.Writes, s.Engine.Writes, s.Plain.Synced)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestBenchRefusesATargetTheFlowHasNot: a typo in --targets is an error
// naming the flow's targets, before anything runs.
func TestBenchRefusesATargetTheFlowHasNot(t *testing.T) {
	root, _ := filepath.Abs("..")
	_, err := bench.Run(t.Context(), bench.Options{Exe: "/nonexistent", Assets: os.DirFS(root), Sizes: []int{10}, Targets: []string{"bluerockel"}, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "bluerocktel") {
		t.Fatalf("error %v, want one naming the flow's targets", err)
	}
}
