package engine

import (
	"maps"
	"slices"
)

// Outcomes are the names a run counts records under, per system (pulled,
// created, updated, …, failed): the keys of Result's counts and the
// `outcome` label of crmsync_records_total.
func Outcomes() []string { return slices.Sorted(maps.Keys((&Counts{}).asMap())) }
