// Package yamltest checks the messages crmsync gives for broken YAML files
// against golden files: each testdata file holds one mistake an admin makes,
// and the .want beside it the exact message. It is imported by tests only.
package yamltest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Broken runs parse on every file matching glob (except those named in
// skip) as a subtest, and compares its error with the file's .want; with
// update it writes the .want files instead (read every change before
// committing it). A file that parses without an error fails, and so does a
// glob that matches fewer than min files.
func Broken(t *testing.T, glob string, skip []string, min int, update bool, parse func(file string, data []byte) error) {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if contains(skip, filepath.Base(f)) {
			continue
		}
		n++
		t.Run(strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)), func(t *testing.T) {
			checkOne(t, f, update, parse)
		})
	}
	if n < min {
		t.Errorf("%d broken files match %s; want at least %d", n, glob, min)
	}
}

func checkOne(t *testing.T, f string, update bool, parse func(string, []byte) error) {
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	perr := parse(f, data)
	if perr == nil {
		t.Fatalf("%s was accepted; want an error", f)
	}
	got := perr.Error()
	wantFile := strings.TrimSuffix(f, filepath.Ext(f)) + ".want"
	if update {
		if err := os.WriteFile(wantFile, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(wantFile)
	if err != nil {
		t.Fatalf("%v (run the test with -update, then read the message)", err)
	}
	if got != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("%s:\ngot  %s\nwant %s", f, got, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
