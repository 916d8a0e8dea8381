// Package emulator is an in-memory BlueRockTel instance for crmsync's
// tests, `crmsync emulate` and the demo: an http.Handler that behaves like
// the vendor's Laravel API (Passport bearer tokens and POST /api/login,
// Spatie QueryBuilder filters and sorts, Laravel's plain length-aware
// paginator with its links, PHP's json_encode, {"message":...} and 422
// {"message","errors"} bodies, auto-increment ids, PR%06d/CL%06d account
// numbers and microsecond UTC timestamps), with fault injection from
// emukit.
//
// It speaks one spelling of the property names (Options.Naming, default
// Camel, as the vendor's PHP SDK): it answers in it and, like a Laravel app
// keeping only $request->validated() keys, silently drops written keys in
// the other one (Options.LenientNaming accepts both).
//
// The package knows nothing of the client (connectors/bluerocktel): it
// keeps its own copy of every API fact it needs (collections, columns,
// spellings, the conversion route), each with its source, so that the
// emulator stays a model of the vendor's API and not of crmsync's reading
// of it.
package emulator
