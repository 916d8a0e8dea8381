// Package bluerocktel is crmsync's connector for BlueRockTel, a Laravel
// REST API (Passport bearer tokens, Spatie QueryBuilder filters and sorts,
// Laravel's plain length-aware paginator). Client is the
// connectors.Connector for prospects and customers: Pull (newest-first
// scans with early stop, see pull.go), Get, Find, Create, Update (PUT of the
// changed keys), Delete and ConvertStage (prospect to customer through a
// configurable route). Every request goes through the shared httpx layer
// and sends Accept: application/json (without it Laravel redirects
// unauthenticated calls to its login page).
//
// The emulator, an in-memory http.Handler that behaves like a BlueRockTel
// instance, is the sub-package emulator. It imports nothing of this
// package, and this package's code names it only in register.go, which
// builds it for the connector registry.
//
// Field names: the vendor's documentation spells properties in snake_case,
// its official SDK in camelCase (FKs and timestamps snake_case in both).
// The SDK decodes and writes camelCase, so the live API most probably reads
// and answers it. The client reads both and always hands the engine
// snake_case Fields, so mappings use one spelling; it writes camelCase
// unless Options.Naming says otherwise.
package bluerocktel
