package daemon

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/state"
)

var screenshot = flag.String("console.screenshot", "", "write the console's screenshot here (e.g. ../docs/console.png)")

// browser finds Debian's chromium (or Chrome); the test is skipped, saying
// so, where there is none (.ci/run installs it).
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (apt-get install chromium): the console was not rendered in a browser")
	return ""
}

func headless(ctx context.Context, t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--window-size=1400,900", "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// The console as a person sees it, rendered by a real browser: the flow,
// its failing state with the API's error as text, what it owes, the chart
// of recent runs, how far behind the source it may be, the dead letters,
// and (with admin.token set) the buttons and the token field.
func TestConsoleInHeadlessChromium(t *testing.T) {
	t.Parallel()
	bin := browser(t)
	d, _ := newHangingDaemon(t, Options{Version: "v1.2.3", AdminToken: "0123456789abcdef"})
	var b state.Batch
	now := time.Now().UTC()
	for i := range 12 {
		fin := now.Add(time.Duration(i-12) * 5 * time.Minute)
		r := state.Run{Flow: "f", Mode: "sync", Started: fin.Add(-time.Duration(1+i%4) * time.Second), Finished: fin,
			Counts: map[string]map[string]int{"dst": {"created": 3 * i, "updated": i % 5}}}
		if i == 11 {
			r.Error = "dst unavailable: HTTP 503"
			r.Counts["dst"]["failed"] = 2
		}
		b.PutRun(r)
	}
	b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "dst", CanonicalID: "c1", SourceSystem: "src", SourceEntity: "lead", SourceID: "42",
		Op: "create", Error: "422: email is not a valid address", Attempts: 3})
	b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "dst", CanonicalID: "c2", Pending: true, Op: "update", Error: "503", Attempts: 1})
	if err := d.o.Store.Commit(&b); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.adminHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dom := string(headless(ctx, t, bin, "--dump-dom", srv.URL+"/"))
	for _, want := range []string{"crmsync v1.2.3", "<b>f</b>", "src → dst", "failing", "dst unavailable: HTTP 503",
		"<h2>Dead letters</h2>", "422: email is not a valid address", "pending (target down)", "src lead 42",
		"in sync as of", "(10 min ago)", ">run now</button>", ">replay</button>", ">drop</button>", `type="password" name="token"`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered console lacks %q", want)
		}
	}
	if n := strings.Count(dom, `<rect class="run`); n != 12 {
		t.Errorf("the chart shows %d runs, want 12", n)
	}
	png := filepath.Join(t.TempDir(), "console.png")
	if *screenshot != "" {
		png = *screenshot
	}
	headless(ctx, t, bin, "--screenshot="+png, srv.URL+"/")
	img, err := os.ReadFile(png)
	if err != nil || len(img) < 10_000 || !bytes.HasPrefix(img, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v, %d bytes", err, len(img))
	}
	if *screenshot != "" {
		fmt.Println("wrote", png)
	}
}
