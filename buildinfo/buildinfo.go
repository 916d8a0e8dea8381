// Package buildinfo says which build of crmsync is running, from the build
// information Go embeds in every binary (runtime/debug.ReadBuildInfo): the
// module version, the VCS revision and whether the tree had local changes,
// and the Go version. A release build can override the version with
// -ldflags "-X github.com/crmsync/crmsync/buildinfo.version=v1.2.3".
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is empty unless set with -ldflags -X at link time.
var version string

// Info describes one build.
type Info struct {
	Version  string // module version, "(devel)" from a checkout
	Revision string // VCS revision, "" when built without VCS stamping
	Dirty    bool   // the tree had local changes
	Go       string // runtime.Version()
}

// Read returns the running binary's build information.
func Read() Info {
	in := Info{Version: "(devel)", Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.modified":
				in.Dirty = s.Value == "true"
			}
		}
	}
	if version != "" {
		in.Version = version
	}
	return in
}

// ShortRevision is the first 12 characters of the revision, with "-dirty"
// when the tree had local changes; "" without a revision.
func (in Info) ShortRevision() string {
	rev := in.Revision
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if in.Dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the one-line form `crmsync --version` prints.
func (in Info) String() string {
	parts := []string{in.Version}
	if r := in.ShortRevision(); r != "" {
		parts = append(parts, "commit "+r)
	}
	parts = append(parts, in.Go, runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, ", ")
}
