// Package funnel holds crmsync's canonical funnel model: the one shape every
// CRM record is mapped into and out of.
//
// A Record is an organisation or a person at one stage of the sales funnel
// (suspect < lead < hot_prospect < prospect < customer), with a fixed set of
// canonical fields (see Fields) and its identity in every linked system.
//
// Values are kept as plain JSON-friendly Go values so that records can be
// stored, diffed, merged and fingerprinted field by field:
//   - string fields hold a string (the empty string is "absent");
//   - bool fields hold a bool;
//   - time fields hold an RFC 3339 string in UTC with nanoseconds;
//   - kind and stage hold their string form.
//
// The package imports nothing of the rest of crmsync.
package funnel
