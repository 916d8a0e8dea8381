// Package config loads crmsync's configuration file strictly: keys written
// twice, unknown keys (with a "did you mean"), wrong types (naming the key),
// unknown systems, bad cron schedules and missing mapping files are errors
// that name file:line and what was expected, all reported at once; invalid
// YAML is reported on its own, at the line at fault. The YAML side of this
// is yamlx's, shared with the mapping files. String values may use ${VAR} and ${VAR:-default}; an unset variable
// without a default is an error. Credentials are held as Secret, which never
// prints its value.
//
// Relative paths (state file, mapping files) are resolved against the
// directory of the config file.
package config
