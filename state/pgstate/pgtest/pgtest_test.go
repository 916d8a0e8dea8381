package pgtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without initdb and pg_ctl the error says what is missing and both ways
// to get PostgreSQL, and it is the one Lazy turns into a skip.
func TestMissingBinariesSayHowToGetThem(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := findBinIn([]string{dir, filepath.Join(dir, "missing")})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("findBinIn without pg_ctl = %v; want ErrUnavailable", err)
	}
	for _, want := range []string{"initdb and pg_ctl", "postgresql package", EnvDSN} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %q", err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "pg_ctl"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := findBinIn([]string{filepath.Join(dir, "missing"), dir}); err != nil || got != dir {
		t.Fatalf("findBinIn = %q, %v; want %q", got, err, dir)
	}
}

func TestWithSearchPath(t *testing.T) {
	for dsn, want := range map[string]string{
		"host=/tmp/x user=u":          "host=/tmp/x user=u search_path=s1",
		"postgres://u@h/db":           "postgres://u@h/db?search_path=s1",
		"postgres://u@h/db?sslmode=x": "postgres://u@h/db?sslmode=x&search_path=s1",
	} {
		if got := WithSearchPath(dsn, "s1"); got != want {
			t.Errorf("WithSearchPath(%q) = %q, want %q", dsn, got, want)
		}
	}
}
