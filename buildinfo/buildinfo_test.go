package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesVersionRevisionAndGo(t *testing.T) {
	t.Parallel()
	in := Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", Dirty: true, Go: "go1.99"}
	got := in.String()
	want := "v1.2.3, commit 0123456789ab-dirty, go1.99, " + runtime.GOOS + "/" + runtime.GOARCH
	if got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s := (Info{Version: "(devel)", Go: "go1.99"}).String(); strings.Contains(s, "commit") {
		t.Errorf("no revision, yet %q names a commit", s)
	}
}

func TestReadHasTheGoVersion(t *testing.T) {
	t.Parallel()
	if in := Read(); in.Go != runtime.Version() || in.Version == "" {
		t.Errorf("Read() = %+v", in)
	}
}
