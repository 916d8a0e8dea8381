package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondOpenInProcessIsLocked(t *testing.T) {
	t.Parallel()
	s, path := newStore(t)
	_, err := Open(path, Options{}) // default wait: 1s
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("state file %s is in use by another crmsync process (waited 1s); stop it or use --state to pick another file", path)
	if err.Error() != want {
		t.Fatalf("message:\n got %q\nwant %q", err, want)
	}
	// A reader is locked out by the writer too.
	if _, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) ||
		!strings.Contains(err.Error(), "waited 100ms") {
		t.Fatalf("read-only Open while held = %v, want ErrLocked after 100ms", err)
	}
	// Once the holder closes, the file opens and the first one's data is there.
	commit(t, s, func(b *Batch) { b.SetCursor("k", []byte("v")) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, path)
	if c, _ := s2.Cursor("k"); string(c) != "v" {
		t.Fatalf("cursor after reopen = %q", c)
	}
}

func TestReadersShareTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r1, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	defer r2.Close()
	if _, err := Open(path, Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer while readers hold the file = %v, want ErrLocked", err)
	}
}

const holdEnv = "CRMSYNC_STATE_TEST_HOLD"

// TestHelperHoldLock is not a test: run by TestSecondProcessIsLocked as a
// child process, it opens the file named by $CRMSYNC_STATE_TEST_HOLD, says
// "LOCKED" and holds it until its stdin closes.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv(holdEnv)
	if path == "" {
		return
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	fmt.Println("LOCKED")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	os.Exit(0)
}

func TestSecondProcessIsLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHoldLock$", "-test.count=1")
	// A race-enabled child sleeps a second at a clean exit unless told not to.
	cmd.Env = append(os.Environ(), holdEnv+"="+path, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "LOCKED" {
		t.Fatalf("child said %q, %v; want LOCKED", line, err)
	}

	_, err = Open(path, Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while another process holds the file = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("state file %s is in use by another crmsync process (waited 200ms); stop it or use --state to pick another file", path)
	if err.Error() != want {
		t.Fatalf("message:\n got %q\nwant %q", err, want)
	}

	// The child lets go; now the file opens.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s := openT(t, path)
	if _, err := s.Stats(); err != nil {
		t.Fatal(err)
	}
}
