package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestShellCompletionOffersFlowNames: pressing TAB after `crmsync sync -c
// FILE` (cobra's hidden __complete command, which every generated shell
// script calls) lists the file's flows, and --flow of deadletters does too.
func TestShellCompletionOffersFlowNames(t *testing.T) {
	for _, args := range [][]string{
		{"__complete", "sync", "-c", "../config.example.yaml", ""},
		{"__complete", "plan", "-c", "../config.example.yaml", "tribe"},
		{"__complete", "deadletters", "list", "-c", "../config.example.yaml", "--flow", ""},
	} {
		var out, errOut bytes.Buffer
		if code := Execute(context.Background(), args, Env{Stdout: &out, Stderr: &errOut}); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		if !strings.Contains(out.String(), "tribecrm-to-others\ttribecrm -> overplane, bluerocktel") {
			t.Errorf("%v: completions\n%s\nlack the example's flow", args, out.String())
		}
	}
	var out bytes.Buffer
	Execute(context.Background(), []string{"__complete", "sync", "-c", "../config.example.yaml", "zzz"}, Env{Stdout: &out, Stderr: &bytes.Buffer{}})
	if strings.Contains(out.String(), "tribecrm-to-others") {
		t.Errorf("a prefix that names no flow completed to one:\n%s", out.String())
	}
}
