package cli

import "github.com/crmsync/crmsync/buildinfo"

// version is the one line `crmsync --version` prints.
func version() string { return buildinfo.Read().String() }
