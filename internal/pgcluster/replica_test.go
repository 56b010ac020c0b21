package pgcluster_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgcluster"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A replicated pair replicates synchronously, and after the primary's crash
// and the standby's promotion every acknowledged commit is on the new
// primary, which takes writes on its own and which the pair's DSN reaches.
func TestReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	r, err := pgcluster.StartReplicated()
	if err != nil {
		pgtest.SkipOrFail(t, fmt.Errorf("start a primary and a standby: %w", err))
	}
	t.Cleanup(r.Remove)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	primary := open(t, r.Primary.DSN())
	var state, app string
	if err := primary.QueryRowContext(ctx, "SELECT sync_state, application_name FROM pg_stat_replication").Scan(&state, &app); err != nil {
		t.Fatal(err)
	}
	if state != "sync" {
		t.Fatalf("sync_state %q (application_name %q), want sync", state, app)
	}
	for _, q := range []string{
		"CREATE TABLE acked (n int)",
		"INSERT INTO acked SELECT generate_series(1, 100)",
	} {
		if _, err := primary.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	standby := open(t, r.Standby.DSN())
	var inRecovery bool
	if err := standby.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby: in recovery %v, %v", inRecovery, err)
	}
	if err := r.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.Standby.Promote(); err != nil {
		t.Fatal(err)
	}
	for _, drv := range []string{"postgres", "pgx"} {
		db := openDriver(t, drv, r.DSN())
		var port, n int
		if err := db.QueryRowContext(ctx, "SELECT current_setting('port')::int, (SELECT count(*) FROM acked WHERE n > 0)").Scan(&port, &n); err != nil {
			t.Fatalf("%s on the pair's DSN after promotion: %v", drv, err)
		}
		if port != r.Standby.Port() || n != 100 {
			t.Errorf("%s: reached port %d (standby %d) and found %d acknowledged rows, want 100", drv, port, r.Standby.Port(), n)
		}
		// The new primary does not wait for a synchronous standby it lacks.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := db.ExecContext(wctx, "INSERT INTO acked VALUES (0)")
		cancel()
		if err != nil {
			t.Errorf("%s: write on the promoted standby: %v", drv, err)
		}
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	return openDriver(t, "postgres", dsn)
}

func openDriver(t *testing.T, driverName, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
