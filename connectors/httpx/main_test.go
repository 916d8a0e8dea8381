package httpx

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs this package's tests 16 at a time unless -parallel says
// otherwise: they wait on pauses, backoffs and server timers (a second for
// each Retry-After: 1), not on the CPU, so GOMAXPROCS at a time (the default)
// leaves the package mostly asleep.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}
