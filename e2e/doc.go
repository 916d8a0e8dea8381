// Package e2e holds crmsync's end-to-end tests: they drive the real CLI
// (in-process through cli.Execute, and as a built binary) against the three
// API emulators served over HTTP on loopback, and check only what a user
// would notice: command output and exit codes, the records in each CRM as
// its API shows them, and the state file as `crmsync status` reports it.
//
// The package has no non-test code. Benchmarks of whole syncs live here too
// (BenchmarkSyncTribeCRM, BenchmarkResyncUnchanged).
package e2e
