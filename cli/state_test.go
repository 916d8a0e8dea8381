package cli

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
	"github.com/crmsync/crmsync/state/pgstate/pgtest"
)

// pg is this test binary's PostgreSQL for the migrate tests, started by
// the first test that needs it (skipped without PostgreSQL).
var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// syncedWorld is a CLI world whose state file a sync has filled.
func syncedWorld(t *testing.T) *cliWorld {
	t.Helper()
	w := newCLIWorld(t, 4, "warn", nil)
	if code, out, errOut := w.run("sync", "--config", w.cfg); code != 0 && code != ExitUndelivered {
		t.Fatalf("sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return w
}

// statusWithout is `status` of one state, without the line naming it.
func (w *cliWorld) statusWithout(path string) string {
	w.t.Helper()
	out := w.mustRun("status", "--config", w.cfg, "--state", path)
	_, rest, _ := strings.Cut(out, "\n")
	return rest
}

type migrateJSON struct {
	Counts   map[string]int `json:"counts"`
	Verified int            `json:"verified"`
	Extra    int            `json:"extra_in_destination"`
}

// A synced state file copied with `state migrate` shows the same status,
// the counts printed match the file's, and a second copy into the same
// destination is refused until --force.
func TestStateMigrateFileToFile(t *testing.T) {
	t.Parallel()
	w := syncedWorld(t)
	dst := filepath.Join(w.dir, "copy.db")
	res := decode[migrateJSON](t, w.mustRun("state", "migrate", "--from", w.state, "--to", dst, "--json"))
	if res.Counts["records"] == 0 || res.Counts["links"] == 0 || res.Counts["runs"] == 0 || res.Counts["cursors"] == 0 {
		t.Fatalf("counts %v: a synced file has records, links, runs and cursors", res.Counts)
	}
	if res.Verified == 0 || res.Extra != 0 {
		t.Errorf("verified %d entries, %d extra", res.Verified, res.Extra)
	}
	if a, b := w.statusWithout(w.state), w.statusWithout(dst); a != b {
		t.Errorf("status differs:\noriginal:\n%s\ncopy:\n%s", a, b)
	}

	code, out, errOut := w.run("state", "migrate", "--from", w.state, "--to", dst)
	if code != 1 || !strings.Contains(errOut, "already holds state") || !strings.Contains(errOut, "records ") || !strings.Contains(errOut, "--force") {
		t.Fatalf("migrate into a filled file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out = w.mustRun("state", "migrate", "--from", w.state, "--to", dst, "--force")
	if !strings.Contains(out, "verified") || !strings.Contains(out, "records") {
		t.Errorf("forced migrate:\n%s", out)
	}
}

// A source file a running process holds is refused with a message that
// says so; so is a source and destination that are one file.
func TestStateMigrateRefusesALockedSource(t *testing.T) {
	t.Parallel()
	w := syncedWorld(t)
	held, err := state.Open(w.state, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, _, errOut := w.run("state", "migrate", "--from", w.state, "--to", filepath.Join(w.dir, "copy.db"))
	if code != 1 || !strings.Contains(errOut, "in use by another crmsync process") || !strings.Contains(errOut, "stop it, then migrate") {
		t.Fatalf("migrate from a held file: exit %d\nstderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "copy.db")); err == nil {
		t.Error("a destination was created although the source was refused")
	}
	held.Close()
	busy := filepath.Join(w.dir, "busy.db")
	heldDst, err := state.Open(busy, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = w.run("state", "migrate", "--from", w.state, "--to", busy)
	heldDst.Close()
	if code != 1 || !strings.Contains(errOut, "the destination "+busy+" is in use") {
		t.Errorf("migrate into a held file: exit %d\nstderr:\n%s", code, errOut)
	}
	code, _, errOut = w.run("state", "migrate", "--from", w.state, "--to", filepath.Join(w.dir, ".", filepath.Base(w.state)))
	if code != 2 || !strings.Contains(errOut, "same state") {
		t.Errorf("migrate onto itself: exit %d\n%s", code, errOut)
	}
}

// `state migrate` both ways between a file and PostgreSQL ends with a file
// whose status is the original's; nothing printed holds the password.
func TestStateMigrateThroughPostgres(t *testing.T) {
	t.Parallel()
	srv := pg.Get(t)
	w := syncedWorld(t)
	dsn := asURL(t, srv.Schema(t))
	out := w.mustRun("state", "migrate", "--from", w.state, "--to", dsn)
	if !strings.Contains(out, "verified") || !strings.Contains(out, "to postgres://") {
		t.Fatalf("to postgres:\n%s", out)
	}
	db, err := pgstate.Open(context.Background(), dsn, pgstate.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := db.Stats()
	_ = db.Close()
	if err != nil || stats["records"] == 0 {
		t.Fatalf("the database holds %v (%v) after the copy", stats, err)
	}
	back := filepath.Join(w.dir, "back.db")
	res := decode[migrateJSON](t, w.mustRun("state", "migrate", "--from", dsn, "--to", back, "--json"))
	if res.Counts["records"] == 0 {
		t.Fatalf("from postgres: counts %v", res.Counts)
	}
	if a, b := w.statusWithout(w.state), w.statusWithout(back); a != b {
		t.Errorf("status differs after bbolt → postgres → bbolt:\noriginal:\n%s\nback:\n%s", a, b)
	}
	code, _, errOut := w.run("state", "migrate", "--from", w.state, "--to", dsn)
	if code != 1 || !strings.Contains(errOut, "already holds state") {
		t.Errorf("into filled postgres: exit %d\n%s", code, errOut)
	}

	// A replica running on the database (it holds a lease) is writing:
	// the database is refused as a source until it stops.
	rw, err := pgstate.Open(context.Background(), dsn, pgstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, ok, err := rw.Acquire(context.Background(), "crmsync-1", []string{"t2b"}, time.Minute); err != nil || !ok {
		t.Fatalf("Acquire: %v, %v", ok, err)
	}
	code, _, errOut = w.run("state", "migrate", "--from", dsn, "--to", filepath.Join(w.dir, "again.db"))
	if code != 1 || !strings.Contains(errOut, "replica crmsync-1 holds the lease on flow t2b") || !strings.Contains(errOut, "stop every replica") {
		t.Errorf("from a database a replica holds: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "again.db")); err == nil {
		t.Error("a destination was created although the source was refused")
	}
}

// asURL turns pgtest's key=value DSN into the postgres:// URL a state
// setting takes.
func asURL(t *testing.T, dsn string) string {
	t.Helper()
	if state.IsURL(dsn) {
		return dsn
	}
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"host": {c.Host}, "port": {strconv.Itoa(int(c.Port))}, "sslmode": {"disable"}}
	if sp := c.RuntimeParams["search_path"]; sp != "" {
		q.Set("search_path", sp)
	}
	u := url.URL{Scheme: "postgres", Path: "/" + c.Database, RawQuery: q.Encode()}
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	} else {
		u.User = url.User(c.User)
	}
	return u.String()
}

// A key=value connection string is not taken for a file name.
func TestStateMigrateRefusesAKeyValueDSN(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut strings.Builder
	code := Execute(context.Background(), []string{"state", "migrate", "--from", filepath.Join(dir, "a.db"), "--to", "host=db.internal user=crmsync dbname=crmsync"},
		Env{Stdout: &out, Stderr: &errOut})
	if code != 2 || !strings.Contains(errOut.String(), "postgres://") {
		t.Errorf("exit %d\n%s", code, errOut.String())
	}
}

// `state compact` rewrites the file (status unchanged) and prints both
// sizes; a database URL is refused with a pointer to VACUUM, without its
// password; a file in use is refused.
func TestStateCompact(t *testing.T) {
	t.Parallel()
	w := syncedWorld(t)
	before := w.statusWithout(w.state)
	out := w.mustRun("state", "compact", "--config", w.cfg)
	if !strings.Contains(out, "compacted "+w.state) || !strings.Contains(out, "before") || !strings.Contains(out, "after") {
		t.Errorf("compact:\n%s", out)
	}
	if after := w.statusWithout(w.state); after != before {
		t.Errorf("status changed by compact:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	sizes := decode[map[string]any](t, w.mustRun("state", "compact", "--state", w.state, "--json"))
	if sizes["before_bytes"] == nil || sizes["after_bytes"] == nil {
		t.Errorf("compact --json: %v", sizes)
	}

	code, stdout, errOut := w.run("state", "compact", "--state", "postgres://crm:s3cret@db.example/crm")
	if code != 1 || !strings.Contains(errOut, "VACUUM") || strings.Contains(stdout+errOut, "s3cret") {
		t.Errorf("compact of a URL: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, errOut)
	}

	held, err := state.Open(w.state, state.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, _, errOut = w.run("state", "compact", "--state", w.state)
	if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "stop it, then compact") {
		t.Errorf("compact of a file in use: exit %d\n%s", code, errOut)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 2048: "2.0 KiB", 16 << 20: "16.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
