package bench

import (
	"crypto/sha256"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestProcessCPUReadsProcStat: the emulators' CPU the bench reports comes
// from /proc/PID/stat; this process's own grows by at least a tick while it
// burns 200 ms of CPU, and a process that is not there reads as 0.
func TestProcessCPUReadsProcStat(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/PID/stat is Linux's")
	}
	before := processCPU(os.Getpid())
	sum := sha256.Sum256(nil)
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		sum = sha256.Sum256(sum[:])
	}
	after := processCPU(os.Getpid())
	if d := after - before; d < 10*time.Millisecond {
		t.Errorf("200 ms of hashing read as %v of CPU, want at least a 10 ms tick", d)
	}
	if got := processCPU(1 << 30); got != 0 {
		t.Errorf("a pid that is not there: %v, want 0", got)
	}
}
