package pgbouncer_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgbouncer"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop()
		os.Exit(code)
	}))
}

// start starts a Bouncer in front of the test server, stopped when t ends.
// Without pgbouncer installed it skips t, or fails it under CI.
func start(t *testing.T) *pgbouncer.Bouncer {
	t.Helper()
	b, err := pgbouncer.Start(pgtest.Require(t))
	if errors.Is(err, pgbouncer.ErrNotInstalled) {
		pgtest.SkipOrFail(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	return b
}

// The Bouncer pools by transaction: one client connection's consecutive
// transactions run on different server connections, while one transaction
// stays on one. Stop ends the process, frees the port and deletes the
// files, and may be called again.
func TestTransactionPooling(t *testing.T) {
	b := start(t)
	db := pgtest.OpenDSN(t, "postgres", b.DSN())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	backend := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var pid int
		if err := q.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// Start fills the pool and pgbouncer hands its connections out in turn:
	// PoolSize statements should do, a few more are allowed for a pool
	// still settling.
	seen := map[int]bool{}
	tries := 0
	for ; tries < 100 && len(seen) < pgbouncer.PoolSize; tries++ {
		seen[backend(conn)] = true
	}
	t.Logf("%d server connections in %d statements", len(seen), tries)
	if len(seen) < pgbouncer.PoolSize {
		t.Fatalf("one client's statements ran on %d server connections, want %d: not transaction pooling round robin", len(seen), pgbouncer.PoolSize)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := backend(tx)
	for range 10 {
		if pid := backend(tx); pid != first {
			t.Fatalf("one transaction ran on backends %d and %d", first, pid)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	db.Close()

	dir, pid := b.Dir(), b.PID()
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if pgbouncer.ProcessAlive(pid) {
		t.Errorf("pgbouncer (PID %d) still runs after Stop", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v", dir, err)
	}
	if c, err := net.Dial("tcp", b.Addr()); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", b.Addr())
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// RemoveStale kills the pgbouncer of a directory whose owner is gone and
// deletes the directory, and leaves a live owner's Bouncer alone.
func TestRemoveStale(t *testing.T) {
	stale, live := start(t), start(t)
	stale.ReleaseOwner()
	removed, err := pgbouncer.RemoveStale("")
	if err != nil {
		t.Fatalf("RemoveStale: %v", err)
	}
	found := false
	for _, dir := range removed {
		found = found || dir == stale.Dir()
		if dir == live.Dir() {
			t.Errorf("removed the live Bouncer's %s", dir)
		}
	}
	if !found {
		t.Errorf("RemoveStale removed %q, not the stale %s", removed, stale.Dir())
	}
	if pgbouncer.ProcessAlive(stale.PID()) {
		t.Errorf("the stale pgbouncer (PID %d) still runs", stale.PID())
	}
	if _, err := os.Stat(stale.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale directory: %v", err)
	}
	if !pgbouncer.ProcessAlive(live.PID()) {
		t.Error("the live pgbouncer was stopped")
	}
	if _, err := os.Stat(filepath.Join(live.Dir(), "pgbouncer.ini")); err != nil {
		t.Errorf("the live Bouncer's files: %v", err)
	}
}

// A pgbouncer that answers with an error fails Start at once, with
// pgbouncer's reason.
func TestStartFailsOnAnswer(t *testing.T) {
	// A database that does not exist on the upstream: pgbouncer passes
	// the server's refusal on.
	dsn := pgtest.Require(t)
	if u, err := url.Parse(dsn); err == nil && strings.HasPrefix(u.Scheme, "postgres") {
		u.Path = "/pgstore_no_such_database"
		dsn = u.String()
	} else {
		dsn += " dbname=pgstore_no_such_database"
	}
	b, err := pgbouncer.Start(dsn)
	if errors.Is(err, pgbouncer.ErrNotInstalled) {
		pgtest.SkipOrFail(t, err)
	}
	if err == nil {
		b.Stop()
		t.Fatal("Start succeeded in front of a database that does not exist")
	}
	if !strings.Contains(err.Error(), "pgstore_no_such_database") {
		t.Errorf("error does not give pgbouncer's reason: %v", err)
	}
}

// StartWith's PoolSize sets how many server connections the pool opens and
// hands out in turn: one client's statements run on exactly that many.
func TestStartWithPoolSize(t *testing.T) {
	const size = pgbouncer.PoolSize + 2
	b, err := pgbouncer.StartWith(pgtest.Require(t), pgbouncer.Options{PoolSize: size})
	if errors.Is(err, pgbouncer.ErrNotInstalled) {
		pgtest.SkipOrFail(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	db := pgtest.OpenDSN(t, "postgres", b.DSN())
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[int]bool{}
	for range 20 * size {
		var pid int
		if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		seen[pid] = true
	}
	if len(seen) != size {
		t.Fatalf("one client's statements ran on %d server connections, want Options.PoolSize = %d", len(seen), size)
	}
}
