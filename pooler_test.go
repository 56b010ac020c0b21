package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgbouncer"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Tests behind a transaction-mode pooler: a real PgBouncer (pool_mode =
// transaction) between the store and the server, which hands each
// transaction of a client connection to whichever server connection is
// free (see internal/pgbouncer).

// throughPooler names the tests (top-level functions that run their body
// with eachDriver) whose body also runs through the shared PgBouncer, once
// per driver, as subtests named <driver>_via_pgbouncer: the core load and
// save, expiry, Regenerate and Revoke, and prune tests. TestPoolerRoutes
// checks that each exists and builds its stores with newTestStore.
var throughPooler = map[string]bool{
	// Core: load, save, cookies.
	"TestCookieCarriesOnlySignedID":                 true,
	"TestKeyRotation":                               true,
	"TestConcurrentRequestsShareNoMutableState":     true,
	"TestMissingOrExpiredRowGetsNewID":              true,
	"TestSaveWrites":                                true,
	"TestSaveAfterConcurrentLogoutDoesNotResurrect": true,
	"TestParallelSavesOnOneSession":                 true,
	// Expiry.
	"TestExpiryBoundary":               true,
	"TestUnchangedSaveWritesNothing":   true,
	"TestAbsoluteTimeout":              true,
	"TestRememberMe":                   true,
	"TestExpiryJudgedByAppServerClock": true,
	// Regenerate and Revoke.
	"TestRegenerateResurrectsDeletedSession":    true,
	"TestConcurrentRegenerateLeavesTwoSessions": true,
	"TestRegenerateNewSessionCreatesIt":         true,
	"TestRevoke":                                true,
	"TestSignOutEverywhereElse":                 true,
	// Prune.
	"TestPruneDeletesOnlyExpired":        true,
	"TestManyStoresPruneTogether":        true,
	"TestSteppedClockPrunesLiveSessions": true,
	// Table creation from many processes at once.
	"TestConcurrentTableCreation": true,
}

// poolerConfig sets what a store needs behind a transaction-mode pooler.
// newTestStore applies it to the stores it builds on a pooled pool.
func poolerConfig(cfg *pgstore.Config) {
	cfg.TransactionPooler = true
}

// newStoreOn is pgstore.New with the pooler's settings for a pooled db,
// for tests that make their stores without newTestStore.
func newStoreOn(db *sql.DB, cfg pgstore.Config) (*pgstore.Store, error) {
	if isPooled(db) {
		poolerConfig(&cfg)
	}
	return pgstore.New(db, cfg)
}

// pooled holds the pools that go through PgBouncer (*sql.DB → true).
var pooled sync.Map

func isPooled(db *sql.DB) bool {
	_, ok := pooled.Load(db)
	return ok
}

// pooledDB returns the shared pool for driverName through the shared
// PgBouncer, with the driver settings a pooler needs
// (pgtest.PoolerParams). Without PgBouncer it skips t, or fails it under
// CI.
func pooledDB(t testing.TB, driverName string) *sql.DB {
	t.Helper()
	key := "pgbouncer/" + driverName
	if db, ok := shared.Load(key); ok {
		return db.(*sql.DB)
	}
	db, err := sql.Open(driverName, pgtest.BouncerDSN(t, driverName))
	if err != nil {
		t.Fatal(err)
	}
	// Marked before it is shared, so that no test gets it unmarked.
	pooled.Store(db, true)
	if prev, loaded := shared.LoadOrStore(key, db); loaded {
		pooled.Delete(db)
		db.Close()
		return prev.(*sql.DB)
	}
	return db
}

// The harness is a transaction pooler that misroutes session state: one
// client connection's consecutive transactions run on different server
// connections, and a session-level advisory lock taken in one statement is
// not held by the backend that runs the next, while it stays held, for
// nobody, on the server connection that took it.
func TestPoolerMisroutesSessionState(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db := pgtest.OpenDSN(t, drv, pgtest.BouncerDSN(t, drv))
			ctx := ctxTimeout(t)
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			backendOfTx := func() int {
				t.Helper()
				tx, err := conn.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				var pid int
				if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				return pid
			}
			first, moved := backendOfTx(), false
			for try := 0; try < 20 && !moved; try++ {
				moved = backendOfTx() != first
			}
			if !moved {
				t.Fatalf("21 transactions of one client connection all ran on backend %d: not a transaction pooler", first)
			}

			key := int64(rand.Int32N(1 << 30))
			var lockPID int
			if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) AS l", key).Scan(&lockPID); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unlockOn(t, db, key, lockPID) })
			// The lock on a small key is (classid 0, objid key, objsubid 1).
			const heldBy = `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND classid = 0 AND objid = $1 AND objsubid = 1 AND pid = %s)`
			misrouted := false
			for try := 0; try < 20 && !misrouted; try++ {
				var pid int
				var held bool
				if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid(), "+fmt.Sprintf(heldBy, "pg_backend_pid()"), key).Scan(&pid, &held); err != nil {
					t.Fatal(err)
				}
				if held != (pid == lockPID) {
					t.Fatalf("backend %d holds the lock: %v; the lock was taken on backend %d", pid, held, lockPID)
				}
				misrouted = !held
			}
			if !misrouted {
				t.Fatalf("the 20 statements after pg_advisory_lock all ran on its backend %d", lockPID)
			}
			var stillHeld bool
			if err := db.QueryRowContext(ctx, "SELECT "+fmt.Sprintf(heldBy, "$2"), key, lockPID).Scan(&stillHeld); err != nil {
				t.Fatal(err)
			}
			if !stillHeld {
				t.Errorf("the lock is gone from backend %d: the pooler reset the server connection", lockPID)
			}
		})
	}
}

// unlockOn releases the session-level advisory lock key on backend pid,
// through the pooler: the lock would otherwise stay on that server
// connection for the rest of the run.
func unlockOn(t *testing.T, db *sql.DB, key int64, pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for try := 0; try < 100; try++ {
		var unlocked bool
		err := db.QueryRowContext(ctx, "SELECT CASE WHEN pg_backend_pid() = $2 THEN pg_advisory_unlock($1) ELSE false END", key, pid).Scan(&unlocked)
		if err != nil {
			t.Errorf("unlock: %v", err)
			return
		}
		if unlocked {
			return
		}
	}
	t.Errorf("could not reach backend %d to release advisory lock %d", pid, key)
}

// What breaks behind a transaction pooler, and what the drivers' settings
// (pgtest.PoolerParams) mend: without them, lib/pq parses a query with
// parameters in one exchange and binds it in another, and pgx caches named
// prepared statements, so parameterized queries fail (or run another
// client's statement) once the pooler sends the second exchange to another
// server. With them, queries work; but a statement from db.Prepare is
// named on one server connection with either driver, so it still breaks,
// which is why a store behind a pooler must not prepare statements.
func TestPoolerBreaksServerSideStatements(t *testing.T) {
	for _, tc := range []struct {
		name    string
		driver  string
		params  map[string]string
		prepare bool
		breaks  bool
	}{
		{"lib/pq defaults", "postgres", nil, false, true},
		{"lib/pq binary_parameters", "postgres", pgtest.PoolerParams("postgres"), false, false},
		{"lib/pq binary_parameters Prepare", "postgres", pgtest.PoolerParams("postgres"), true, true},
		{"pgx defaults", "pgx", nil, false, true},
		{"pgx exec mode", "pgx", pgtest.PoolerParams("pgx"), false, false},
		{"pgx exec mode Prepare", "pgx", pgtest.PoolerParams("pgx"), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A PgBouncer of its own: the statements this leaves on
			// server connections are no other test's business.
			db := pgtest.OpenDSN(t, tc.driver, pgtest.WithParams(pgtest.OwnBouncer(t), tc.params))
			ctx := ctxTimeout(t)
			// Queries of a few texts, so that one run on another client's
			// statement returns a wrong answer rather than the right one.
			query := func(i int) (got, want int, err error) {
				err = db.QueryRowContext(ctx, fmt.Sprintf("SELECT $1::int + %d", i%5), i).Scan(&got)
				return got, i + i%5, err
			}
			if tc.prepare {
				stmt, err := db.PrepareContext(ctx, "SELECT $1::int")
				if err != nil {
					t.Fatal(err)
				}
				defer stmt.Close()
				query = func(i int) (got, want int, err error) {
					err = stmt.QueryRowContext(ctx, i).Scan(&got)
					return got, i, err
				}
			}
			// 8 clients, 200 queries in all; a breaking setup stops at the
			// first failure.
			const workers, queries = 8, 200
			var mu sync.Mutex
			var failures []string
			next := make(chan int, queries)
			for i := range queries {
				next <- i
			}
			close(next)
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						got, want, err := query(i)
						if err == nil && got == want {
							continue
						}
						mu.Lock()
						failures = append(failures, fmt.Sprintf("query %d: got %d, want %d, error %v", i, got, want, err))
						mu.Unlock()
						if tc.breaks {
							return
						}
					}
				}()
			}
			wg.Wait()
			switch {
			case tc.breaks && len(failures) == 0:
				t.Errorf("%d queries through the pooler all worked; want this setup to break", queries)
			case tc.breaks:
				t.Logf("breaks, as it should: %s", failures[0])
			case len(failures) > 0:
				t.Errorf("%d of %d queries failed through the pooler, first %s", len(failures), queries, failures[0])
			}
		})
	}
}

// One pruner per table at a time behind the pooler: a transaction holding
// the table's prune lock makes a round skip, and once it ends every round
// gets the lock, whichever server connections its statements land on. A
// session-level lock that the pooler strands on a server connection would
// make later rounds skip.
func TestPruneLockThroughPooler(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db := pooledDB(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			past := time.Now().Add(-time.Hour)
			insertRows(t, db, st.SchemaName(), 10, past, "x")
			ctx := ctxTimeout(t)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", st.LockKey("prune")); err != nil {
				t.Fatal(err)
			}
			n, locked, err := st.PruneRound(ctx)
			if err != nil || locked || n != 0 {
				t.Fatalf("round while another transaction holds the lock: %d, locked %v, %v", n, locked, err)
			}
			if got := rowCount(t, db, st.SchemaName(), "user_sessions"); got != 10 {
				t.Fatalf("rows deleted while another transaction held the lock: %d left", got)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			n, locked, err = st.PruneRound(ctx)
			if err != nil || !locked || n != 10 {
				t.Fatalf("round after the lock's transaction ended: %d, locked %v, %v", n, locked, err)
			}
			// Rounds of a few statements each, over PoolSize server
			// connections taken in turn: their locks land on each.
			for round := range 3 * pgbouncer.PoolSize {
				insertRows(t, db, st.SchemaName(), 1, past, fmt.Sprintf("r%d-", round))
				n, locked, err := st.PruneRound(ctx)
				if err != nil || !locked || n != 1 {
					t.Fatalf("round %d with nobody else pruning: %d, locked %v, %v", round+2, n, locked, err)
				}
			}
		})
	}
}

// Each test routed through the pooler exists, runs its body with
// eachDriver (which adds the pooled runs), and makes no store but through
// newTestStore (which applies poolerConfig to pooled pools).
func TestPoolerRoutes(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !throughPooler[fn.Name.Name] {
				continue
			}
			found[fn.Name.Name] = true
			var eachDriverCalls int
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.Ident:
					if x.Name == "eachDriver" {
						eachDriverCalls++
					}
				case *ast.SelectorExpr:
					if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "pgstore" &&
						(x.Sel.Name == "New" || x.Sel.Name == "NewWithHooks" || x.Sel.Name == "Open") {
						t.Errorf("%s: %s calls pgstore.%s: its store would miss poolerConfig", fset.Position(x.Pos()), fn.Name.Name, x.Sel.Name)
					}
				}
				return true
			})
			if eachDriverCalls == 0 {
				t.Errorf("%s does not call eachDriver: routing it through the pooler does nothing", fn.Name.Name)
			}
		}
	}
	var missing []string
	for name := range throughPooler {
		if !found[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routed through the pooler but not found: %s", strings.Join(missing, ", "))
	}
}
