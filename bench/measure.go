package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// child is one finished child process.
type child struct {
	stdout  []byte
	wall    time.Duration
	cpu     time.Duration // user + system
	peakRSS int64         // bytes
}

// runChild runs exe with args and env added to this process's environment,
// and measures it: wall time, and CPU and peak RSS from the rusage wait4
// returned. A failed child's error carries the end of its stderr.
//
// Linux counts in a child's ru_maxrss the peak RSS of the process that
// started it (exec keeps the old address space's high-water mark), so the
// bench process stays small: its own peak is a floor under every figure.
func runChild(ctx context.Context, exe string, env []string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	err := cmd.Run()
	wall := time.Since(started)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", exe, strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return nil, fmt.Errorf("%s: no rusage on this system", exe)
	}
	return &child{stdout: stdout.Bytes(), wall: wall,
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		peakRSS: ru.Maxrss * 1024}, nil // Linux reports kilobytes
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// measure turns a child and the requests it made into a Measure, per n
// source records.
func measure(c *child, sv served, n, synced int) Measure {
	m := Measure{Seconds: round(c.wall.Seconds(), 3), CPUSeconds: round(c.cpu.Seconds(), 3), PeakRSSBytes: c.peakRSS,
		Requests: sv.Requests, Reads: sv.Reads, Writes: sv.Writes, Synced: synced,
		EmulatorCPUSeconds: round(sv.CPU.Seconds(), 2)}
	if s := c.wall.Seconds(); s > 0 {
		m.RecordsPerSecond = round(float64(n)/s, 1)
		m.CoresBusy = round((c.cpu+sv.CPU).Seconds()/s, 2)
	}
	m.CPUPerRecordUS = round(c.cpu.Seconds()*1e6/float64(n), 1)
	m.EmulatorCPUPerRecordUS = round(sv.CPU.Seconds()*1e6/float64(n), 1)
	m.RequestsPerRecord = round(float64(sv.Requests)/float64(n), 4)
	return m
}

// medianMeasure is the median of each figure over ms.
func medianMeasure(ms []Measure) Measure {
	f := func(get func(Measure) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
		}
		return median(v)
	}
	return Measure{
		Seconds:           f(func(m Measure) float64 { return m.Seconds }),
		RecordsPerSecond:  f(func(m Measure) float64 { return m.RecordsPerSecond }),
		CPUSeconds:        f(func(m Measure) float64 { return m.CPUSeconds }),
		CPUPerRecordUS:    f(func(m Measure) float64 { return m.CPUPerRecordUS }),
		PeakRSSBytes:      int64(f(func(m Measure) float64 { return float64(m.PeakRSSBytes) })),
		Requests:          int64(f(func(m Measure) float64 { return float64(m.Requests) })),
		Reads:             int64(f(func(m Measure) float64 { return float64(m.Reads) })),
		Writes:            int64(f(func(m Measure) float64 { return float64(m.Writes) })),
		RequestsPerRecord: f(func(m Measure) float64 { return m.RequestsPerRecord }),
		Synced:            int(f(func(m Measure) float64 { return float64(m.Synced) })),

		EmulatorCPUSeconds:     f(func(m Measure) float64 { return m.EmulatorCPUSeconds }),
		EmulatorCPUPerRecordUS: f(func(m Measure) float64 { return m.EmulatorCPUPerRecordUS }),
		CoresBusy:              f(func(m Measure) float64 { return m.CoresBusy }),
	}
}

// median of v (the mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}
