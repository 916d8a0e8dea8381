// Package tribecrm owns crmsync's TribeCRM connector: a client of Tribe's
// OData v4 API (connectors.Connector over the 10 commercial-relationship
// entity sets) and a faithful in-memory emulator of that API for tests,
// `crmsync emulate` and `crmsync demo`.
//
// Client (Client, New, Options):
//   - Pull reads Relationship_{Organization|Person}_CommercialRelationship_<Stage>
//     with a keyset cursor on (LastMutationDate, ID) per set, plus keysets
//     over Relation_Organization / Relation_Person so that edits of an
//     organisation or person reach the engine (see pull.go).
//   - Create, Update, ConvertStage, Delete, Get and Find map onto POST, POST
//     with ID (or PATCH, or a whole-entity PUT: Options.UpdateMethod), POST
//     with ID and _Type, DELETE and filtered GETs (see client.go).
//   - Auth: a static bearer token, or OAuth2 client credentials with the
//     token cached and refreshed before expiry and once on a 401 (oauth.go).
//   - Query strings are written by hand with %20 for spaces: Tribe does not
//     read '+' as a space.
//
// Emulator (Emulator, NewEmulator, EmulatorOptions): /v1/odata/<Set> with
// $filter (filter.go), $orderby, $top, $skip, $count, $select, $expand,
// GUID keys, server-set timestamps, stage conversion, OData error bodies,
// OAuth2 POST /oauth2/token, a server page cap with @odata.nextLink, PUT
// as a merge (Tribe's pages) or a replace (OData's PUT: PutSemantics), and
// knobs for tests (Freeze, Touch, EditDuringPaging, faults via emukit).
package tribecrm
