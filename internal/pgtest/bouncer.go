package pgtest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/pgsessions/pgstore/internal/pgbouncer"
)

var (
	bouncerMu  sync.Mutex
	bouncer    *pgbouncer.Bouncer
	bouncerErr error
)

// Bouncer returns a DSN for the test server's database through a PgBouncer
// in transaction pooling mode (see internal/pgbouncer), without the driver
// settings a pooler needs (BouncerDSN adds them). The first call starts the
// PgBouncer, after deleting those that killed test runs left behind; the
// tests of the binary share it, and Stop stops it.
//
// Without a server it ends t as Require does. Without pgbouncer installed it
// skips t, saying why, or fails it under CI; a pgbouncer that is installed
// but does not start fails t.
func Bouncer(t testing.TB) string {
	t.Helper()
	dsn := Require(t)
	bouncerMu.Lock()
	if bouncer == nil && bouncerErr == nil {
		if _, err := pgbouncer.RemoveStale(""); err != nil {
			t.Logf("pgtest: %v", err) // someone else's leftovers: not this test's fault
		}
		bouncer, bouncerErr = pgbouncer.Start(dsn)
	}
	b, err := bouncer, bouncerErr
	bouncerMu.Unlock()
	if err != nil {
		bouncerFailed(t, dsn, err)
	}
	return b.DSN()
}

// OwnBouncer is Bouncer for a test that may leave server connections in a
// state other tests must not inherit (named prepared statements, session
// locks): it starts a PgBouncer of t's own, stopped when t ends.
func OwnBouncer(t testing.TB) string {
	t.Helper()
	dsn := Require(t)
	b, err := pgbouncer.Start(dsn)
	if err != nil {
		bouncerFailed(t, dsn, err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b.DSN()
}

// bouncerFailed ends t, for which no PgBouncer started in front of dsn.
func bouncerFailed(t testing.TB, dsn string, err error) {
	t.Helper()
	switch {
	case errors.Is(err, pgbouncer.ErrNotInstalled) && !InCI():
		t.Skipf("skipped for want of PgBouncer: %v\n(under CI this would fail)", err)
	case errors.Is(err, pgbouncer.ErrNotInstalled):
		t.Fatalf("%v\n(this is a failure, not a skip, because CI is set: CI must run the pooler tests)", err)
	default:
		t.Fatalf("start PgBouncer in front of %s: %v", redact(dsn), err)
	}
}

// BouncerDSN is Bouncer's DSN with the settings driverName needs behind a
// transaction-mode pooler (PoolerParams).
func BouncerDSN(t testing.TB, driverName string) string {
	t.Helper()
	return WithParams(Bouncer(t), PoolerParams(driverName))
}

// PoolerParams are the connection parameters with which driverName keeps
// no state on a server connection between transactions, which a
// transaction-mode pooler hands to other clients:
//   - lib/pq ("postgres"): binary_parameters=yes, so that a query with
//     parameters goes in one message sequence on the unnamed statement,
//     rather than a Parse and a later Bind that the pooler may send to
//     different servers;
//   - pgx ("pgx"): default_query_exec_mode=exec, so that queries use the
//     unnamed statement rather than pgx's cache of named prepared
//     statements.
//
// Neither makes db.Prepare safe: a prepared *sql.Stmt is a named statement
// on one server connection with either driver.
func PoolerParams(driverName string) map[string]string {
	switch driverName {
	case "postgres":
		return map[string]string{"binary_parameters": "yes"}
	case "pgx":
		return map[string]string{"default_query_exec_mode": "exec"}
	}
	panic(fmt.Sprintf("pgtest: PoolerParams: unknown driver %q", driverName))
}

// stopBouncer stops the shared PgBouncer, if Bouncer started one.
func stopBouncer() {
	bouncerMu.Lock()
	defer bouncerMu.Unlock()
	if bouncer != nil {
		if err := bouncer.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
		bouncer = nil
	}
}
