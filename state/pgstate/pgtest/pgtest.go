// Package pgtest gives tests a PostgreSQL server: the one named by the
// CRMSYNC_TEST_PG environment variable (a DSN), or a throwaway cluster that
// it creates in a temporary directory with initdb and pg_ctl, listening on
// a unix socket only, run as an unprivileged user (when the test runs as
// root, as the "postgres" user when there is one, else "nobody"). Start it
// once per test binary, in TestMain, and Stop it at the end; each test
// then takes a schema of its own with Schema. For tests only.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the DSN of an existing
// server to use instead of a throwaway cluster.
const EnvDSN = "CRMSYNC_TEST_PG"

// ErrUnavailable is wrapped by Start when there is no PostgreSQL to use;
// the message says what is missing and how to get it.
var ErrUnavailable = errors.New("no PostgreSQL for tests")

// Server is a PostgreSQL server for tests.
type Server struct {
	// DSN connects to the server's maintenance database.
	DSN string
	// Throwaway is true when Start created the cluster (false for
	// CRMSYNC_TEST_PG).
	Throwaway bool

	dir     string // the cluster's temporary directory
	pgCtl   string
	runAs   *account
	schemas atomic.Int64
}

// Start returns the server of CRMSYNC_TEST_PG when set, else starts a
// throwaway cluster. Without PostgreSQL binaries it fails with an error
// wrapping ErrUnavailable.
func Start(ctx context.Context) (*Server, error) {
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		s := &Server{DSN: dsn}
		if err := s.ping(ctx); err != nil {
			return nil, fmt.Errorf("%s is set but the server does not answer: %w", EnvDSN, err)
		}
		return s, nil
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	return startCluster(ctx, bin)
}

// findBinDir finds the directory holding initdb and pg_ctl: $PATH, then the
// newest /usr/lib/postgresql/*/bin, then /usr/local/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	return findBinIn(append(dirs, "/usr/local/bin"))
}

// findBinIn returns the first of dirs holding both initdb and pg_ctl.
func findBinIn(dirs []string) (string, error) {
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: initdb and pg_ctl not found in $PATH, /usr/lib/postgresql/*/bin or /usr/local/bin "+
		"(install Debian's postgresql package, or set %s to a server's DSN)", ErrUnavailable, EnvDSN)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// account is the unprivileged user the cluster runs as, when the test runs
// as root.
type account struct {
	name     string
	uid, gid uint32
}

func runAsAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		if uid == 0 {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("%w: running as root and neither a postgres nor a nobody user exists to run PostgreSQL as", ErrUnavailable)
}

func startCluster(ctx context.Context, bin string) (s *Server, err error) {
	acct, err := runAsAccount()
	if err != nil {
		return nil, err
	}
	sweepStale(ctx, filepath.Join(bin, "pg_ctl"), acct)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s = &Server{Throwaway: true, dir: dir, pgCtl: filepath.Join(bin, "pg_ctl"), runAs: acct}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if acct != nil {
		// The user must reach its directories; the parent stays root's.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, err
		}
		for _, d := range []string{data, sock} {
			if err := os.Chown(d, int(acct.uid), int(acct.gid)); err != nil {
				return nil, err
			}
		}
	}
	if out, err := s.run(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "crmsync", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c max_connections=200 -c fsync=on", sock)
	logFile := filepath.Join(sock, "postgres.log")
	if out, err := s.run(ctx, s.pgCtl, "start", "-w", "-t", "60", "-D", data, "-l", logFile, "-o", opts); err != nil {
		logs, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, logs)
	}
	s.DSN = fmt.Sprintf("host=%s port=5432 user=crmsync dbname=postgres sslmode=disable", sock)
	if err := s.ping(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

const (
	dirPrefix = "crmsync-pg-"
	ownerFile = "owner.pid" // the pid of the test binary that made the cluster
)

// sweepStale stops and removes the clusters of test binaries that died
// without stopping theirs (killed, or ended by go test's -timeout, which
// skips TestMain's cleanup). A cluster whose owner still runs is left alone.
func sweepStale(ctx context.Context, pgCtl string, acct *account) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		s := &Server{dir: dir, pgCtl: pgCtl, runAs: acct}
		_ = s.stop(ctx, "immediate")
	}
}

// run runs a PostgreSQL program, as the unprivileged account when there is
// one, and returns its combined output.
func (s *Server) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.Dir = s.dir
	if s.runAs != nil {
		setCredential(cmd, s.runAs.uid, s.runAs.gid)
		cmd.Env = append(cmd.Env, "HOME="+s.dir, "USER="+s.runAs.name)
	}
	return cmd.CombinedOutput()
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// Stop stops a throwaway cluster and removes its directory; for
// CRMSYNC_TEST_PG it does nothing. Stopping twice is harmless.
func (s *Server) Stop() error {
	if s == nil || s.dir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.stop(ctx, "fast")
}

// stop stops the cluster with pg_ctl's mode and removes its directory.
func (s *Server) stop(ctx context.Context, mode string) error {
	var err error
	if _, statErr := os.Stat(filepath.Join(s.dir, "data", "postmaster.pid")); statErr == nil {
		out, stopErr := s.run(ctx, s.pgCtl, "stop", "-w", "-m", mode, "-D", filepath.Join(s.dir, "data"))
		if stopErr != nil {
			err = fmt.Errorf("pg_ctl stop: %w\n%s", stopErr, out)
		}
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	s.dir = ""
	return err
}

// Schema creates a schema of its own for t, dropped when t ends, and
// returns a DSN whose search_path points at it.
func (s *Server) Schema(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d_%s", os.Getpid(), s.schemas.Add(1), sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return WithSearchPath(s.DSN, name)
}

// WithSearchPath returns dsn with its search_path set to schema.
func WithSearchPath(dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "search_path=" + schema
	}
	return dsn + " search_path=" + schema
}

// Exec runs one statement on the maintenance database.
func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// sanitize keeps a schema name short and plain.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// URL returns dsn (a key=value DSN or a URL) as a postgres:// URL, as a
// crmsync config's `state:` takes it: a unix socket directory goes in
// ?host=, runtime parameters (search_path) in the query too.
func URL(dsn string) (string, error) {
	if strings.Contains(dsn, "://") {
		return dsn, nil
	}
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	u := url.URL{Scheme: "postgres", Path: "/" + c.Database}
	if strings.HasPrefix(c.Host, "/") {
		q.Set("host", c.Host)
		q.Set("port", strconv.Itoa(int(c.Port)))
	} else {
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	if c.Password != "" {
		u.User = url.UserPassword(c.User, c.Password)
	} else {
		u.User = url.User(c.User)
	}
	q.Set("sslmode", "disable")
	for k, v := range c.RuntimeParams {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
