package bench_test

import (
	"bytes"
	"database/sql"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runner{m}, goleak.Cleanup(func(code int) {
		pgtest.Stop()
		os.Exit(code)
	}))
}

// runner closes the shared pools after the benchmarks and before goleak
// looks for leftover goroutines.
type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	shared.Range(func(_, db any) bool {
		db.(*sql.DB).Close()
		return true
	})
	return code
}

const cookieName = "session"

var hashKey = bytes.Repeat([]byte{1}, 32)

// benchDriver is the database/sql driver the benchmarks use: lib/pq, or
// what PGSTORE_BENCH_DRIVER names ("pgx" for pgx's stdlib driver).
func benchDriver() string {
	if d := os.Getenv("PGSTORE_BENCH_DRIVER"); d != "" {
		return d
	}
	return "postgres"
}

// shared holds one pool per driver.
var shared sync.Map

// sharedDB returns the shared pool for driverName. Without a server it
// fails b under CI or with DATABASE_URL set, and skips it elsewhere.
func sharedDB(b testing.TB, driverName string) *sql.DB {
	b.Helper()
	if db, ok := shared.Load(driverName); ok {
		return db.(*sql.DB)
	}
	dsn := pgtest.Require(b)
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if prev, loaded := shared.LoadOrStore(driverName, db); loaded {
		db.Close()
		return prev.(*sql.DB)
	}
	return db
}

// newStore returns a store on a table in schema (a new schema of its own
// when schema is empty), with a test key and the background pruner off. It
// is closed when b ends.
func newStore(b testing.TB, db *sql.DB, cfg pgstore.Config) *pgstore.Store {
	b.Helper()
	if cfg.SchemaName == "" {
		cfg.SchemaName = pgtest.Schema(b, db)
	}
	cfg.KeyPairs = [][]byte{hashKey}
	cfg.PruneInterval = -1
	st, err := pgstore.New(db, cfg)
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(func() {
		if err := st.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	return st
}
