// Package emulator is a faithful in-memory emulator of the parts of the
// Overplane API (https://api.overplane.dev, generated from ERPNext/Frappe
// doctypes) that crmsync uses: an http.Handler for `crmsync emulate`, the
// demo and the tests. It knows nothing of the client in package overplane;
// each side keeps its own copy of the API facts (paths, limits, child
// tables).
//
// # The API, as emulated
//
//   - Auth: "Authorization: Bearer <key>". The emulator accepts exactly the
//     configured key (default "dev-token"); it does not insist on an
//     "sk_test_" prefix, so the default configuration works as is. Anything
//     else gets 401.
//   - Prospects: GET|POST /api/crm/prospect, GET|PATCH|DELETE
//     /api/crm/prospect/{id}. Ids are "prospect_" plus 16 random base62
//     characters (deterministic for seeded data). created_at and updated_at
//     are set by the server, RFC 3339 in UTC with milliseconds
//     ("2026-01-01T00:00:00.000Z"); the vendor's examples show whole seconds,
//     and the client accepts any RFC 3339 value. updated_at changes on every
//     PATCH.
//   - Lists: limit (default 20, capped at 100 or Options.PageCap),
//     offset (default 0); a negative or non-numeric value, or an unknown query
//     parameter, is a 400. Order: created_at descending, then id descending
//     (byte order). Reply {"data":[...],"has_more":offset+len<total,"total":N}.
//   - Create answers 200 (Stripe style; the docs only say "returns the
//     object"). company is required, company_name is unique
//     (case-insensitively, as MariaDB's default collation makes Frappe's
//     unique names) with 409 on a clash, annual_revenue must be a number
//     (null stores 0, as a Frappe Currency field does), string fields must be
//     strings or null, and unknown fields (including the read-only id,
//     created_at, updated_at) are a 400. no_of_employees takes any string
//     (the vendor's page types it so and gives "no_of_employees_example");
//     Options.FrappeTypes restores ERPNext's Select options (1-10 ... 1000+)
//     and the Date check of expected_closing. PATCH merges the keys
//     sent. DELETE answers {"id":...,"deleted":true}; a second DELETE is 404.
//   - Errors (undocumented; assumed Stripe-like): {"error":{"type":
//     "invalid_request_error","code":"...","message":"...","param":"..."}}
//     for 400, 401, 404 (code resource_missing), 405, 409
//     (resource_already_exists) and 429 (code rate_limit); 5xx use type
//     "api_error". The client branches on the HTTP status only.
//   - Child tables: /api/crm/prospect-lead and /api/crm/prospect-opportunity
//     (GET ?parent_id= required, POST, PATCH|DELETE /{id}, POST /reorder with
//     the guessed body {"parent_id":...,"ids":[...]}, which the client does
//     not use). Rows carry id, idx (1-based, dense) and prospect_id, no
//     timestamps. POST needs prospect_id (an unknown one is 404) and, for
//     lead rows, lead; an optional idx inserts at that position. PATCH may
//     carry idx (the row moves there) and prospect_id (the row moves to that
//     prospect), as the vendor's child pages list them. Row checks: email
//     looks like an address, probability is 0..100. reorder puts the listed
//     rows first, the rest after in their order; an id of another parent,
//     or twice, is a 400.
//   - Link fields (links.go): Prospect.industry (Industry Type),
//     prospect_owner (User), company (Company), Prospect Lead.lead (Lead)
//     and Prospect Opportunity.opportunity (Opportunity) must name an
//     existing record, by id or, for Company, Industry Type and User, by the
//     field Frappe names them by (company_name, industry, email); otherwise
//     417 with Frappe's "Could not find Row #1: Lead: x" and exc_type
//     LinkValidationError. Options.ValidateLinks false (the links-unchecked
//     Profile) accepts any text. A lead row takes lead_name, status, email
//     and mobile_no from its Lead when it gives none (fetch_if_empty). The
//     linked doctypes are collections with the vendor's routes
//     (/api/crm/lead, /api/setup/company, /api/crm/industry-type,
//     /api/core/user, /api/crm/opportunity: list, POST, GET|PATCH|DELETE
//     /{id}); a Lead's email_id is unique (409) and a Lead needs a name, a
//     company name or an e-mail (417), as ERPNext's lead.py has it.
//     Deletes keep idx dense. Writing a child row does not touch the
//     prospect's updated_at. Deleting a prospect deletes its rows.
package emulator
