package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crmsync/crmsync/emulate"
)

// emulators is a `crmsync emulate` child process.
type emulators struct {
	cmd    *exec.Cmd
	urls   map[string]string
	stderr *bytes.Buffer
	done   chan error
}

// startEmulators starts `crmsync emulate` with n records in the source and
// empty targets, every emulator on addr, and waits for its URLs.
func startEmulators(ctx context.Context, exe, addr string, n int, systems []string) (*emulators, error) {
	args := []string{"emulate", "--json", "--log-level", "warn", "--seed", "0", "--" + Source + "-seed", strconv.Itoa(n)}
	for _, s := range systems {
		args = append(args, "--"+s+"-addr", addr)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	e := &emulators{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = e.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		e.done <- cmd.Wait()
	}()
	for line := range lines {
		var out struct {
			URLs map[string]string `json:"urls"`
		}
		if json.Unmarshal([]byte(line), &out) == nil && out.URLs != nil {
			e.urls = out.URLs
			go func() {
				for range lines { // the rest of its output
				}
			}()
			return e, nil
		}
	}
	err = <-e.done
	return nil, fmt.Errorf("crmsync emulate ended before it listened: %v: %s", err, tail(e.stderr.String(), 2000))
}

// env points the config's ${TRIBECRM_URL}, … at the emulators.
func (e *emulators) env() []string {
	out := make([]string, 0, len(e.urls))
	for name, u := range e.urls {
		out = append(out, strings.ToUpper(name)+"_URL="+u)
	}
	return out
}

// served is what the emulators have served so far, and the CPU their
// process has used.
type served struct {
	emulate.Stats
	CPU time.Duration // 0 where /proc is not there to read
}

// Sub is what was served between before and s.
func (s served) Sub(before served) served {
	return served{Stats: s.Stats.Sub(before.Stats), CPU: s.CPU - before.CPU}
}

// stats sums what every emulator has served so far, with the emulators'
// process CPU (user + system).
func (e *emulators) stats(ctx context.Context) (served, error) {
	var sum emulate.Stats
	for name, u := range e.urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+emulate.StatsPath, nil)
		if err != nil {
			return served{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return served{}, fmt.Errorf("%s emulator stats: %w", name, err)
		}
		var s emulate.Stats
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return served{}, fmt.Errorf("%s emulator stats: %w", name, err)
		}
		sum = sum.Add(s)
	}
	return served{Stats: sum, CPU: processCPU(e.cmd.Process.Pid)}, nil
}

// processCPU is the user + system CPU process pid has used, read from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, the USER_HZ
// of every Linux build the bench runs on); 0 where that cannot be read.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis (field 3 onwards).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * (time.Second / 100)
}

// stop ends the emulators (SIGTERM, then SIGKILL after 10 s).
func (e *emulators) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}
