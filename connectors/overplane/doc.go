// Package overplane owns crmsync's connector for Overplane, a REST API
// generated from ERPNext/Frappe doctypes (https://api.overplane.dev). Its
// faithful in-memory emulator is package
// github.com/crmsync/crmsync/connectors/overplane/emulator, which documents
// the API as emulated; the client does not import it (register.go aside,
// which builds it for the connector registry), and the API facts the client
// relies on are in schema.go.
//
// # Pulling
//
// Overplane has no modified-since filter, so Pull is a full scan of the
// newest-first list with limit/offset (Page.FullScan is true, Page.Total is
// the API's total). The cursor (JSON, {"v":1,...}) holds the scan's start,
// the offset after the last page and the (created_at, id) key of the last
// record returned. Because that key never changes and the list is sorted by
// it, the next page is read from a few records before the saved offset and
// only records that sort after the saved key are returned; if the first
// record of the window already sorts after the saved key (records were
// deleted above our position, shifting the list up), the window is moved
// back (by the drop in total, doubling) until it overlaps what we read.
// Creates during a scan only shift records down (duplicates, which the
// engine tolerates). So a record that exists for the whole scan is never
// skipped, whatever the ties on created_at. If the server ever returns a page
// that is not in the assumed order, the scan degrades to re-reading a fixed
// overlap widened by the drop in total (logged as a warning).
//
// A completed scan returns Done; the next Pull with that cursor starts a new
// scan from offset 0. Each prospect's child rows are attached as
// Fields["leads"] and Fields["opportunities"] ([]any of row objects, in idx
// order) unless Options.NoChildren is set, so an edit of a child row changes
// the record's content even where updated_at does not move. A prospect
// deleted between its list page and its child reads is left out of the page.
//
// Child rows are read only for prospects that need it (childcache.go): the
// client remembers each prospect's rows with its updated_at, and a scan
// returns the remembered rows while updated_at is unchanged and the rows are
// younger than Options.ChildMaxAge (default 1 h, each prospect's between half
// and all of it). A child-row edit that moves the parent's updated_at (as
// Frappe's REST API does when it saves a row: the parent is saved too) is
// read on the next scan; one that does not (the emulator's behaviour; the
// vendor documents neither) within ChildMaxAge. Create, Update and Delete
// drop the prospect's rows, so crmsync's own writes are read back by the
// next scan. The memory is per process: an idle re-run in the daemon reads
// the prospect list alone, a new process reads every child table once.
//
// # Writing
//
// Create and Update accept the same two keys (see Client.Update for how rows
// are matched); a child row the API refuses during Create rolls the new
// prospect back. A lead row given without its required lead link is linked
// to the Lead whose email_id is the row's email, created when missing
// (Options.LeadLink; leadlink.go); a row that cannot be linked refuses its
// record. Rows are moved with PATCHes of idx, never POST .../reorder. Find has no server filter to use: it scans, keeping the
// records that hold every match by connectors.MatchesAll (dotted paths such
// as "company_name", "leads.email", "leads.0.email"; case-insensitive, loose
// for names when asked). ConvertStage is always refused: a prospect has no
// stage entity.
package overplane
