package emukit

import (
	"sync"
	"testing"
	"time"
)

// fixedSource is a time source the test moves by hand.
type fixedSource struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fixedSource) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

var clockBase = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func TestClockIsStrictlyMonotonicAtItsPrecision(t *testing.T) {
	t.Parallel()
	src := &fixedSource{t: clockBase}
	c := NewClock(src.now, time.Millisecond)
	a, b := c.Now(), c.Now() // the source stands still
	if !a.Equal(clockBase) || !b.Equal(clockBase.Add(time.Millisecond)) {
		t.Fatalf("Now twice on a still source: %v, %v; want %v and 1ms later", a, b, clockBase)
	}
	if a.Location() != time.UTC {
		t.Fatalf("Now is in %v, want UTC", a.Location())
	}
}

func TestClockAdvanceMovesARunningClockWithoutWaiting(t *testing.T) {
	t.Parallel()
	src := &fixedSource{t: clockBase}
	c := NewClock(src.now, time.Millisecond)
	c.Now()
	c.Advance(10 * time.Minute)
	if got, want := c.Now(), clockBase.Add(10*time.Minute); !got.Equal(want) {
		t.Fatalf("after Advance(10m): %v, want %v", got, want)
	}
	// It stays ahead of its source, and still never repeats a timestamp.
	src.mu.Lock()
	src.t = src.t.Add(time.Second)
	src.mu.Unlock()
	if got, want := c.Now(), clockBase.Add(10*time.Minute+time.Second); !got.Equal(want) {
		t.Fatalf("source 1s on: %v, want %v", got, want)
	}
	if got, want := c.Now(), clockBase.Add(10*time.Minute+time.Second+time.Millisecond); !got.Equal(want) {
		t.Fatalf("next call on a still source: %v, want %v", got, want)
	}
	// Zero and negative durations do nothing: the clock never goes back.
	c.Advance(0)
	c.Advance(-time.Hour)
	if got, want := c.Now(), clockBase.Add(10*time.Minute+time.Second+2*time.Millisecond); !got.Equal(want) {
		t.Fatalf("after Advance(0) and Advance(-1h): %v, want %v", got, want)
	}
}

func TestClockAdvanceMovesAFrozenClockAndItStaysFrozen(t *testing.T) {
	t.Parallel()
	src := &fixedSource{t: clockBase}
	c := NewClock(src.now, time.Millisecond)
	tie := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	c.Freeze(tie.Add(123 * time.Microsecond)) // truncated to the precision
	if a, b := c.Now(), c.Now(); !a.Equal(tie) || !b.Equal(tie) {
		t.Fatalf("frozen: %v, %v; want %v twice", a, b, tie)
	}
	c.Advance(time.Hour)
	if a, b := c.Now(), c.Now(); !a.Equal(tie.Add(time.Hour)) || !b.Equal(a) {
		t.Fatalf("frozen, after Advance(1h): %v, %v; want %v twice", a, b, tie.Add(time.Hour))
	}
	c.Freeze(time.Time{}) // unfreeze: the source plus the hour advanced
	if got, want := c.Now(), clockBase.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("unfrozen: %v, want %v", got, want)
	}
}

func TestClockIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	c := NewClock(nil, time.Microsecond)
	var wg sync.WaitGroup
	got := make([][]time.Time, 4)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if i%50 == 0 {
					c.Advance(time.Millisecond)
				}
				got[g] = append(got[g], c.Now())
			}
		}()
	}
	wg.Wait()
	seen := map[time.Time]bool{}
	for _, ts := range got {
		for i, x := range ts {
			if seen[x] {
				t.Fatalf("timestamp %v returned twice", x)
			}
			seen[x] = true
			if i > 0 && !x.After(ts[i-1]) {
				t.Fatalf("one goroutine saw %v after %v", x, ts[i-1])
			}
		}
	}
}
