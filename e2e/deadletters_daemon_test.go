package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// Issue 11: `deadletters drop` (and replay) while `crmsync run` holds the
// state file hands the action to the daemon, whose console endpoint waits
// for the flow's run, instead of failing on the lock; without admin.token
// it says how to do it instead.
func TestDeadLetterDropAsksTheRunningDaemon(t *testing.T) {
	t.Parallel()
	const token = "admin-token-0123456789abcdef"
	addr := freeAddr(t)
	e := newEnv(t, envOptions{Seed: 20, Edit: func(s string) string {
		s = strings.Replace(s, "listen: 127.0.0.1:9090", "listen: "+addr, 1)
		return strings.Replace(s, "${CRMSYNC_ADMIN_TOKEN:-}", token, 1)
	}})
	e.sync()
	org := e.tribeOrgs()[0]
	if st, b := e.api(tribecrm.System, http.MethodPut, "/v1/odata/"+tribecrm.SetOrganization+"("+org.OrgID+")", map[string]any{"Name": "Q"}); st != http.StatusOK {
		t.Fatalf("PUT organisation: %d %s", st, b)
	}
	e.cli("sync") // BlueRockTel refuses a one-character name: a dead letter
	var list struct {
		DeadLetters []struct{ Key string } `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(e.cli("deadletters", "list", "--json").Stdout), &list); err != nil || len(list.DeadLetters) != 1 {
		t.Fatalf("want one dead letter: %v %+v", err, list)
	}
	dls := list.DeadLetters
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() { done <- runCLIWith(ctx, &syncBuffer{}, logs, "run", "--no-start-run", "--config", e.cfgPath) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 30*time.Second, "the daemon", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	drop := e.cli("deadletters", "drop", dls[0].Key)
	if drop.Code != 0 || !strings.Contains(drop.Stdout, "answered 200: dropped") {
		t.Fatalf("drop while the daemon runs: %s", drop)
	}
	waitFor(t, 30*time.Second, "the dead letter to go", func() bool {
		st := e.status()
		return len(st.Flows) == 1 && st.Flows[0].DeadLetters == 0
	})
	if again := e.cli("deadletters", "drop", dls[0].Key); again.Code == 0 || !strings.Contains(again.Stdout, "404") {
		t.Errorf("dropping it again: %s", again)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the admin token is in the daemon's log")
	}
}
