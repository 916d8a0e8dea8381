// Package connectors defines the contract between crmsync's engine and the
// per-system connectors (connectors/tribecrm, connectors/overplane,
// connectors/bluerocktel), plus the typed errors the engine branches on.
//
// A connector knows HTTP and its own API, nothing of mappings or state. It
// speaks in native records: the API's own entity names and field names, as
// decoded from its JSON. The engine owns cursors (opaque bytes the connector
// produced) and hands them back on the next Pull.
//
// Concurrency: one flow calls a connector from one goroutine for Pull, but
// the engine may issue writes (Create, Update, ...) for one page from several
// goroutines at once, and different flows may share a connector. A Connector
// must be safe for concurrent use.
package connectors
