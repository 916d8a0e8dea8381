// Package emulator is a faithful in-memory emulator of TribeCRM's OData v4
// API, for tests, `crmsync emulate` and `crmsync demo` (Emulator, New,
// Options): the funnel sets, Relation_Organization, Relation_Person, and
// Address and Datastore_Country as entities of their own (an organisation's
// VisitingAddress/PostalAddress and a person's Address are navigations, an
// address's Country a link; created by POST Address or deep insert, bound by
// ID or @odata.bind, never deep-updated; store.go), and
// /v1/odata/<Set> with $filter (filter.go), $orderby, $top,
// $skip, $count, $select, $expand, GUID keys, server-set timestamps, stage
// conversion, OData error bodies, OAuth2 POST /oauth2/token, a server page
// cap with @odata.nextLink, PUT as a merge (Tribe's pages) or a replace
// (OData's PUT: PutSemantics), and knobs for tests (Freeze, Touch,
// EditDuringPaging, faults via emukit), and webhooks (webhooks.go: the
// /v1/webhooks registration API and signed deliveries of every write,
// through a bounded queue, with knobs for lost, duplicated, delayed and
// reordered deliveries; Close stops them).
//
// Lists are answered from per-set ordered indexes (index.go, plan.go): a
// keyset page on (LastMutationDate, ID), a lookup by ID, link or e-mail
// costs O(log N + page), not a scan and sort of the set; a filter the
// indexes cannot narrow falls back to the scan's filter and sort.
// TestIndexedListsAnswerAsTheScan holds the two to the same replies.
// Reads share a sync.RWMutex.
//
// It is an independent witness of the vendor: it imports only the standard
// library, connectors and connectors/emukit, never the client package
// connectors/tribecrm, and keeps its own copy of every vendor fact it needs
// (names.go), so that a mistake in the client is not mirrored here
// (deps_test.go enforces the imports).
package emulator
