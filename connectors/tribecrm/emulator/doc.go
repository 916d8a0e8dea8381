// Package emulator is a faithful in-memory emulator of TribeCRM's OData v4
// API, for tests, `crmsync emulate` and `crmsync demo` (Emulator, New,
// Options): /v1/odata/<Set> with $filter (filter.go), $orderby, $top,
// $skip, $count, $select, $expand, GUID keys, server-set timestamps, stage
// conversion, OData error bodies, OAuth2 POST /oauth2/token, a server page
// cap with @odata.nextLink, PUT as a merge (Tribe's pages) or a replace
// (OData's PUT: PutSemantics), and knobs for tests (Freeze, Touch,
// EditDuringPaging, faults via emukit).
//
// It is an independent witness of the vendor: it imports only the standard
// library, connectors and connectors/emukit, never the client package
// connectors/tribecrm, and keeps its own copy of every vendor fact it needs
// (names.go), so that a mistake in the client is not mirrored here
// (deps_test.go enforces the imports).
package emulator
