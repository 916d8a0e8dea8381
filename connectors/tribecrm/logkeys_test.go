package tribecrm

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

// Issue 11: a connector's log lines carry one "system" key, the configured
// name, and the type under "connector" (zerolog keeps duplicate keys, so a
// JSON consumer used to lose the configured name).
func TestLogLinesNameTheSystemOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	typ := Type()
	conn, err := typ.New(context.Background(), connectors.Settings{Name: "crm-eu", BaseURL: "http://127.0.0.1:1", Token: "t",
		Logger: zerolog.New(&buf)}, typ.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	conn.(*Client).log.Info().Msg("probe")
	line := strings.TrimSpace(buf.String())
	if strings.Count(line, `"system":`) != 1 || strings.Count(line, `"connector":`) != 1 {
		t.Fatalf("log line %s: want one system and one connector key", line)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil || got["system"] != "crm-eu" || got["connector"] != System {
		t.Errorf("log line %s: want system=crm-eu connector=%s", line, System)
	}
}
