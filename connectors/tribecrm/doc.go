// Package tribecrm owns crmsync's TribeCRM connector: a client of Tribe's
// OData v4 API (connectors.Connector over the 10 commercial-relationship
// entity sets).
//
// Client (Client, New, Options):
//   - Pull reads Relationship_{Organization|Person}_CommercialRelationship_<Stage>
//     with a keyset cursor on (LastMutationDate, ID) per set, plus keysets
//     over Relation_Organization / Relation_Person / Address so that edits of
//     an organisation, person or address reach the engine (see pull.go).
//   - Addresses are Address entities behind VisitingAddress/PostalAddress
//     and Address, expanded with their Country and written as entities of
//     their own, with the street line split into Street, HouseNumber and
//     HouseNumberSuffix (address.go).
//   - Create names the relationship, binds a Status and links an
//     organisation or person that exists already (relate.go).
//   - Create, Update, ConvertStage, Delete, Get and Find map onto POST, POST
//     with ID (or PATCH, or a whole-entity PUT: Options.UpdateMethod), POST
//     with ID and _Type, DELETE and filtered GETs (see client.go).
//   - Auth: a static bearer token, or OAuth2 client credentials with the
//     token cached and refreshed before expiry and once on a 401 (oauth.go).
//   - Query strings are written by hand with %20 for spaces: Tribe does not
//     read '+' as a space.
//
// The emulator of this API is the package connectors/tribecrm/emulator, an
// independent witness of the vendor that shares no code with the client; of
// this package's own code only register.go uses it, to give the connector
// registry its emulator (imports_test.go).
package tribecrm
