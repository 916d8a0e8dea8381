// Package engine runs crmsync's flows: pull a page from the source since the
// stored cursor, map each native record into the canonical model, link it to
// its golden record, decide per target (create, update, convert stage, skip,
// dead-letter), push, then commit the page's links, fingerprints, golden
// records and cursor in one state transaction.
//
// It is the only package that knows connectors, mapping and state together;
// it imports the connector contract, never a particular connector.
//
// # Guarantees
//
//   - The cursor moves only in the same transaction as the effects of the
//     page it covers, and only after the page's writes: a crash replays at
//     most one page, and replays are harmless (fingerprints and links).
//   - A create is announced as an intent in state before it is sent; on the
//     next run, an intent left behind is resolved by looking the record up in
//     the target (Find) before anything is created again.
//   - A record whose content did not change since it was last read is not
//     written anywhere (fingerprint); an update sends only changed fields.
//   - A record the target rejects (or the mapping cannot map) is stored as a
//     dead letter with the error and payload; the flow goes on.
package engine
