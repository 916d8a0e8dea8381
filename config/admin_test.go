package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors/builtin"
)

// admin.token enables the console's changing actions: a short one is
// refused at its line, a good one (from ${VAR}) is kept, and its value
// never appears in the error.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"m.yaml": "x"})
	path := filepath.Join(dir, "c.yaml")
	short := strings.Replace(good, "state: s.db", "state: s.db\nadmin:\n  token: abc123", 1)
	_, err := Parse(path, []byte(short), noEnv, builtin.Registry())
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: admin.token is 6 characters long; use at least 16") || strings.Contains(err.Error(), "abc123") {
		t.Errorf("short token: %v", err)
	}
	fromEnv := strings.Replace(good, "state: s.db", "state: s.db\nadmin:\n  token: ${ADMIN_T:-0123456789abcdef0}", 1)
	c, err := Parse(path, []byte(fromEnv), noEnv, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Token.Value() != "0123456789abcdef0" || c.Admin.Token.String() == "0123456789abcdef0" {
		t.Errorf("token %q (prints as %q); want the value kept and redacted when printed", c.Admin.Token.Value(), c.Admin.Token.String())
	}
}
