// Package bluerocktel is crmsync's connector for BlueRockTel, a Laravel
// REST API (Passport bearer tokens, Spatie QueryBuilder filters and sorts,
// Laravel's plain length-aware paginator). It owns two things:
//
//   - Client, the connectors.Connector for prospects and customers: Pull
//     (newest-first scans with early stop, see pull.go), Get, Find, Create,
//     Update (PUT of the changed keys), Delete and ConvertStage (prospect to
//     customer through a configurable route). Every request goes through the
//     shared httpx layer and sends Accept: application/json (without it
//     Laravel redirects unauthenticated calls to its login page).
//   - Emulator, an in-memory http.Handler that behaves like a BlueRockTel
//     instance: the same paths, status codes, error bodies ({"message":...},
//     422 {"message","errors"}, Spatie's 400s), paginator keys and links,
//     auto-increment ids, PR%06d/CL%06d account numbers and microsecond UTC
//     timestamps, with fault injection from emukit.
//
// Field names: the vendor's documentation spells properties in snake_case,
// its official SDK in camelCase (FKs and timestamps snake_case in both).
// The SDK decodes and writes camelCase, so the live API most probably reads
// and answers it. The emulator speaks one spelling (EmulatorOptions.Naming,
// default camelCase): it answers in it and, like a Laravel app keeping only
// $request->validated() keys, silently drops written keys in the other one
// (EmulatorOptions.LenientNaming accepts both). The client reads both and
// always hands the engine snake_case Fields, so mappings use one spelling;
// it writes camelCase unless Options.Naming says otherwise.
package bluerocktel
