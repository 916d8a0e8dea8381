// Package conntest is crmsync's connector contract suite: one set of
// behavioural tests that every connector (tribecrm, overplane, bluerocktel)
// runs against its own emulator over real loopback HTTP.
//
// A connector's contract_test.go fills in a Harness (how to start a fresh
// emulator with records, faults, a page cap and ties; how to build a client;
// a valid record to create; fields to update; a conversion or none; edits to
// make behind the client's back through the API; a match for Find) and calls
// Run. Run then checks, each case as a subtest:
//
//   - Paging: a full pull to the end loses no record and, where nothing
//     changes, returns none twice, under no fault, latency, 20% 5xx, 429 with
//     Retry-After, connection resets (the emulator's knob), a real network
//     fault between client and emulator (Toxiproxy, in process: latency plus
//     reset_peer), a small server page cap, hundreds of records on one
//     timestamp, and records edited while the client pages;
//   - Resume: a pull stopped after two pages and continued by a new client
//     from the saved cursor bytes sees every record;
//   - Incremental: an edit made through the API after a full pull comes back
//     in the next pull from the saved cursor;
//   - CreateGetFind, UpdateOnlyChanged, ConvertStage, Delete;
//   - AuthRefresh: an expired or revoked token costs one refresh, not a failure;
//   - RateLimitHonoured: the client waits the Retry-After of a 429;
//   - Ties5000: 5,000 records on one timestamp lose nothing (skipped with -short).
//
// The package is test support: only _test.go files import it, so its
// dependencies (testing, Toxiproxy) never reach the crmsync binary.
package conntest
