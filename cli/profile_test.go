package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hidden profiling flags write real pprof files (gzip) and refuse a
// pprof address anyone on the network could read.
func TestProfileFlagsWriteProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"validate", "--config", "../config.example.yaml", "--cpuprofile", cpu, "--memprofile", mem},
		Env{Stdout: &out, Stderr: &errOut})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, f := range []string{cpu, mem} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s: not a gzip'd profile (%d bytes, %v)", f, len(b), err)
		}
	}
	errOut.Reset()
	code = Execute(context.Background(), []string{"validate", "--config", "../config.example.yaml", "--pprof", "0.0.0.0:0"}, Env{Stdout: &out, Stderr: &errOut})
	if code == 0 || !strings.Contains(errOut.String(), "loopback") {
		t.Fatalf("--pprof 0.0.0.0:0: exit %d, %q; want a refusal naming loopback", code, errOut.String())
	}
}
