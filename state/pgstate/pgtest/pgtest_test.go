package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

const hangEnv = "CRMSYNC_PGTEST_HANG"

// TestHelperStartAndHang is not a test: run by TestStaleClusterIsSwept as
// a child, it starts a cluster, prints its directory and waits to be killed.
func TestHelperStartAndHang(t *testing.T) {
	if os.Getenv(hangEnv) == "" {
		return
	}
	s, err := Start(context.Background())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println(s.dir)
	time.Sleep(time.Minute)
	os.Exit(3)
}

// A test binary killed before it could stop its cluster leaves the
// cluster running; the next Start stops it and removes its directory.
func TestStaleClusterIsSwept(t *testing.T) {
	if os.Getenv(EnvDSN) != "" {
		t.Skip("uses a throwaway cluster; " + EnvDSN + " is set")
	}
	bin, err := findBinDir()
	if err != nil {
		t.Skipf("PostgreSQL half skipped: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperStartAndHang$", "-test.count=1")
	cmd.Env = append(os.Environ(), hangEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	dir := strings.TrimSpace(line)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !strings.Contains(dir, dirPrefix) {
		t.Fatalf("child: %s", dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("the killed child's cluster is not running: %v", err)
	}
	postmaster, _ := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	acct, err := runAsAccount()
	if err != nil {
		t.Fatal(err)
	}
	sweepStale(ctx, filepath.Join(bin, "pg_ctl"), acct)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stale cluster directory still there: %v", err)
	}
	// pg_ctl waits for the postmaster to remove its pid file; the process
	// itself exits right after.
	for deadline := time.Now().Add(10 * time.Second); running(postmaster); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stale postmaster %d still running", postmaster)
		}
	}
}

// running reports a live process, not a zombie waiting for its parent.
func running(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return processAlive(pid)
	}
	_, after, _ := strings.Cut(string(raw), ") ")
	return !strings.HasPrefix(after, "Z") && !strings.HasPrefix(after, "X")
}
