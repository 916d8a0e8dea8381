// Package state owns everything crmsync persists: one embedded bbolt file
// (go.etcd.io/bbolt) holding cursors, golden records, links, fingerprints,
// create intents, dead letters and run history, and the crash-safe write
// protocol around them.
//
// It imports bbolt, klauspost/compress/s2, the standard library and
// funnel, nothing else of crmsync: cursors are opaque bytes, native
// payloads are plain maps.
//
// # Basics
//
// Open takes an exclusive lock on the file (a shared one with
// Options.ReadOnly), waiting at most Options.Timeout (1s by default) before
// failing with an error that wraps ErrLocked and names the file. Reads
// (Cursor, Link, Record, Fingerprint, Intents, DeadLetters, Runs, Stats)
// each run in their own read transaction and return copies. Writes go
// through a Batch: the engine adds the cursor, records, links, fingerprints,
// intent deletions, dead letters and run of one handled page, and Commit
// applies them in one bbolt transaction, so a page is either entirely
// recorded or not at all, and the cursor never gets ahead of the links it
// depends on. PutIntents and DropDeadLetter commit on their own.
// Record, Fingerprint and DeadLetter decode straight from bbolt's pages
// inside their read transaction (json copies what it keeps), without a
// copy of the value first.
//
// # Crash-safe creates
//
// A create is the one write that cannot simply be repeated. The engine:
//
//  1. commits the write-ahead batch before sending any create: PutRecord
//     (the golden record with its source link) and PutIntent for each
//     create, in one transaction (one fsync), so an intent is never durable
//     without the record it names, nor the reverse;
//  2. sends the creates;
//  3. commits the page: PutRecord (with the new link), PutFingerprint and
//     DeleteIntent for each created record, and the new cursor.
//
// A page with creates costs two transactions, one without costs one.
// A crash after 1 leaves an intent: on the next start the engine lists
// Intents and runs the connector's Find with Intent.Match before creating
// again, so the record appears once. A crash after 3 leaves nothing to do.
// bbolt's copy-on-write pages and double meta page make each commit atomic
// and durable: a crash at any instant leaves the file as of the last
// successful commit.
//
// # File layout (schema version 3)
//
// Every bucket is top-level; keys and values are bytes. "\x00" is a NUL
// byte: system and flow names must not contain one (Batch rejects them).
// JSON values are objects whose "v" member is the value format version
// (2 for records, 1 for the others); times are RFC 3339 in UTC with
// nanoseconds; maps are encoded with sorted keys. testdata/*.golden.json
// pins each JSON shape.
//
//	bucket        key                                        value
//	meta          "format"                                   "crmsync-state" (ASCII)
//	              "schema_version"                           "3" (ASCII decimal)
//	              "dict/<bucket>/<id, 8 hex digits>"         a compression dictionary (see below)
//	cursors       caller's key: "flow/<flow>/<system>",      the connector's cursor bytes, verbatim
//	              "backfill/<flow>", ...                     (opaque: not JSON-wrapped)
//	records       <canonical id>                             {"v":2,"fields","links","sources","gone"}
//	                                                           (or, written by schema 1, {"v":1,"id",...})
//	links         <system> "\x00" <external id>              <canonical id> (UTF-8, not JSON; a UUID as
//	                                                           0x01 and its 16 bytes, see linkval.go)
//	fingerprints  <system> "\x00" <external id>              {"v":1,"hash","entity","source","at","payload"}
//	intents       <system> "\x00" <canonical id>             {"v":1,"id","system","entity","flow","at","match","payload"}
//	deadletters   <flow> "/" <system> "/" <canonical id>     {"v":1,"key","flow","system","canonical_id",
//	              or <flow> "/" <system> "/" <src sys>:<src id>  "source_system","source_id","op","pending","dropped","error",
//	                                                           "attempts","first_at","last_at","payload"}
//	runs          <flow> "\x00" <Started as 8-byte           {"v":1,"flow","mode","started","finished",
//	              big-endian unsigned Unix nanoseconds>        "error","counts"}
//
// The reverse of a link (canonical id → external ids) is the golden
// record's "links" member; PutRecord keeps both sides in step.
//
// The match index (matchindex.go) is the one nested layout: bucket
// "matchindex" holds a bucket per target system, made by the first commit
// that indexes one, with keys "f" <match key> "\x00" <normalised value>
// "\x00" <record key> → <entity> "\x00" <id> (forward rows), "r" <record
// key> → its <key> "\x00" <value> "\x00" pairs (reverse rows) and "m" →
// the JSON IndexMeta. It is derived data: export leaves it out, and a lost
// one is read from the target again.
//
// A record's "sources" (where each field's value came from) is a list of
// groups {"system","at","fields":[...]}, one per system and change time,
// sorted by system, time and field name. At most one group leaves "fields"
// out: it owns every field of "fields" that no other group names. The
// encoder uses that form for the largest group when every field with a
// value has a source and the group's fields all have values (a field a
// system emptied keeps its source, so its group lists it). A record whose
// fields all came from one read stores one group of about 60 bytes. Format
// 1 stored one {"system","at"} entry per field (about 1,000 of a typical
// record's 1,600 bytes) and repeated the key as "id".
//
// Values of records, fingerprints and intents are stored compressed once
// their bucket holds 256 values: the byte 0x01, the id of the bucket's
// dictionary (uvarint), and an S2 block of the JSON above compressed
// against that dictionary (pack.go). The dictionary is made once, in the
// commit that brings the bucket to 256 values, from a sample of them, and
// kept in meta; it is never changed. A value whose first byte is '{' is
// plain JSON (older files, small buckets, values that do not shrink) and
// reads as it is. The dictionary holds copies of those first values as
// they were then, so a sample of old field values stays in the file after
// the records change (as it does in freed pages until they are reused).
//
// The records, links and fingerprints buckets are filled to 70 % when
// bbolt splits a page (fillPercent; their keys are random ids). The file
// grows by a 32nd of its size, 1 to 16 MiB (growStep), not bbolt's 16 MiB.
//
// What a record costs (scripts/bench.sh 10000: TribeCRM → Overplane and
// BlueRockTel, a first sync; one golden record, 2.7 links and 2.7
// fingerprints a source record): 1,710 bytes of file (1,603 at 20,000),
// of which about 950 are in use in pages (golden record 201 + 36 bytes of
// key, fingerprints about 136 + 35 each, links 17 + 35 each, 16 bytes of
// bbolt's per key); the rest is page slack (pages are about 65 % full:
// random keys), free pages and the last growth step. Schema version 2 used
// 5,075 bytes (4,214 at 20,000); version 1 about 6,800. `crmsync state
// compact` rewrites the buckets 100 % full: 1,099 bytes a record at 10,000.
//
// A dead-letter value written before "pending" and "dropped" existed
// decodes with both false (a dead entry), which is what it was; the members
// are optional, so the value format stays version 1. A dropped entry stays
// as a marker until the record is written or fails again.
//
// # Versions
//
// meta/schema_version is the layout version. Open refuses a file with a
// newer version (ErrSchemaTooNew) and migrates an older one, read-write
// only, in one transaction, step by step through the migrations table. A
// value whose "v" this build does not know is reported as corruption rather
// than guessed at. Changing any key or value format means bumping
// SchemaVersion and adding a migration; the golden tests fail until that is
// done on purpose.
//
// Version 3 compressed the values and links (see above); like version 2
// its migration rewrites nothing and values change format when next
// written. Version 2 changed the record value format only (see above). Its migration
// rewrites nothing: it stamps version 2, format-1 records keep reading, and
// each is written as format 2 the next time it changes (one transaction
// rewriting a million records at the first start would hold them all in
// memory). So a read-only Open reads a version-1 file as it is (readableFrom).
// testdata/schema-v1.db is a file written by version 1 (crmsync 94997bc);
// TestSchemaV1FileKeepsWorking opens it both ways and reads every value.
//
// # Caveats
//
//   - One process at a time: bbolt's flock is per open file description, so
//     even a second Open in the same process waits and fails with ErrLocked.
//     A read-only Open is blocked by a running daemon as well; a status
//     command that must work while the daemon runs has to ask the daemon.
//   - Open never panics on a damaged file. A file that is not bbolt, was
//     truncated, or belongs to another program fails with an error wrapping
//     ErrCorrupt that names the path. Memory faults and bbolt panics during
//     a transaction are recovered and reported the same way. Open checks
//     the meta pages and the file length, not every page; a page damaged in
//     the middle of the file is only found when read.
//   - An empty (0-byte) file, or a bbolt file with no buckets, is taken as
//     a new state file and initialised. A crash during the very first Open
//     can leave a partly written file that Open then reports as corrupted;
//     it held nothing, so deleting it is safe.
//   - Payloads round-trip through JSON: numbers come back as float64 (as
//     connectors decode them), so hashes of a re-read payload match hashes
//     of a freshly pulled one. Values json cannot encode (NaN, channels)
//     make the batch fail and write nothing.
//   - Timestamps left zero are set to time.Now() when added; the engine
//     should set them from its own clock. Runs are keyed by flow and
//     Started: putting a run with the same Started replaces it (so a
//     repeated commit does not duplicate it), and runs started before 1970
//     sort after the others.
//   - Each Commit fsyncs once (bbolt's default, kept on purpose); commit
//     whole pages, not single records. Opening read-write writes the meta
//     page only when the schema needs creating or migrating.
//   - The freelist is bbolt's hashmap type (fast with large files) and is
//     synced to disk (NoFreelistSync false), so opening is quick and older
//     bbolt tools can read the file.
package state
