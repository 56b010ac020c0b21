package pgstore_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgproxy"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// proxiedWith is proxied with extra DSN parameters.
func proxiedWith(t testing.TB, driverName string, params map[string]string) (*sql.DB, *pgproxy.Proxy) {
	t.Helper()
	dsn := pgtest.Require(t)
	p, err := pgproxy.Start(pgtest.HostPort(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	all := map[string]string{"sslmode": "disable"}
	for k, v := range params {
		all[k] = v
	}
	return pgtest.OpenDSN(t, driverName, pgtest.WithParams(pgtest.WithHostPort(dsn, p.Addr()), all)), p
}

// oneShot are the DSN settings each driver needs to send its queries
// unprepared in one round trip (Config.TransactionPooler).
var oneShot = map[string]map[string]string{
	"postgres": {"binary_parameters": "yes"},
	"pgx":      {"default_query_exec_mode": "exec"},
}

// A login or Regenerate whose statement committed, but whose reply was lost
// with its connection, is a success: the client gets the cookie of the row
// that was written. The driver or the store runs the statement again, meets
// its own row (a unique violation on a fresh 256-bit ID), and must not
// report the login failed, leaving the values in a row nobody can reach.
func TestCommitWithLostReply(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			// Unprepared statements, so that the proxy sees each one's
			// text as it is sent.
			db, proxy := proxiedWith(t, drv, oneShot[drv])
			st := newTestStore(t, db, pgstore.Config{TransactionPooler: true})
			direct := sharedDB(t, drv)

			proxy.LoseReply("INSERT INTO")
			r, s := get(t, st, nil)
			s.Values["user"] = "ada"
			w := httptest.NewRecorder()
			if err := st.Save(r, w, s); err != nil {
				t.Fatalf("login whose commit's reply was lost: %v", err)
			}
			c := responseCookie(w, cookieName)
			if c == nil {
				t.Fatal("no cookie after the login")
			}
			if n := rowCount(t, direct, st.SchemaName(), "user_sessions"); n != 1 {
				t.Fatalf("%d rows after one login, want 1", n)
			}
			r, s = get(t, st, c)
			if s.IsNew || s.Values["user"] != "ada" {
				t.Fatalf("the login's session does not load: new %v, %v", s.IsNew, s.Values)
			}

			proxy.LoseReply("WITH gone AS")
			w = httptest.NewRecorder()
			if err := st.Regenerate(r, w, s); err != nil {
				t.Fatalf("Regenerate whose commit's reply was lost: %v", err)
			}
			c2 := responseCookie(w, cookieName)
			if c2 == nil || c2.Value == c.Value {
				t.Fatal("Regenerate set no new cookie")
			}
			if _, s := get(t, st, c2); s.IsNew || s.Values["user"] != "ada" {
				t.Fatalf("the regenerated session does not load: new %v, %v", s.IsNew, s.Values)
			}
			if _, s := get(t, st, c); !s.IsNew {
				t.Fatal("the old ID still loads after Regenerate")
			}
		})
	}
}

// Retries outlast a short restart: while the server refuses connections,
// the store keeps trying, with a growing wait, within QueryTimeout, where
// a few back-to-back retries would all be refused in a millisecond.
func TestRetriesOutlastRefusedConnections(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			c := login(t, st, map[any]any{"n": 1})
			refused := proxy.Refuse(8)
			proxy.DropConnections()
			r, s := get(t, st, c)
			if s.IsNew || s.Values["n"] != 1 {
				t.Fatalf("session after the refusals: new %v, %v", s.IsNew, s.Values)
			}
			select {
			case <-refused:
			default:
				t.Fatal("the load succeeded without meeting the refusals: the test tests nothing")
			}
			s.Values["n"] = 2
			if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
				t.Fatal(err)
			}
			if st.Stats().Retries == 0 {
				t.Error("Stats().Retries is 0 after retries")
			}
		})
	}
}

// roleDB returns a pool of drv connections as a new login role, and a
// schema of the test's own that the role may create tables in.
func roleDB(t *testing.T, drv string, admin *sql.DB, prefix string) (db *sql.DB, schema, role string) {
	t.Helper()
	dsn := pgtest.Require(t)
	role = loginRole(t, admin, prefix)
	schema = pgtest.Schema(t, admin)
	if _, err := admin.Exec(`GRANT USAGE, CREATE ON SCHEMA "` + schema + `" TO "` + role + `"`); err != nil {
		t.Fatal(err)
	}
	return pgtest.OpenDSN(t, drv, withUser(dsn, role)), schema, role
}

// New refuses a read-only server or connection, saying why: sessions are
// read where they are written.
func TestNewRefusesReadOnly(t *testing.T) {
	admin := sharedDB(t, "postgres")
	db, schema, role := roleDB(t, "postgres", admin, "pgstore_rn_")
	if _, err := admin.Exec(`ALTER ROLE "` + role + `" SET default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema, PruneInterval: -1})
	if !errors.Is(err, pgstore.ErrReadOnly) || !strings.Contains(err.Error(), "default_transaction_read_only") {
		t.Fatalf("New on a read-only connection: %v", err)
	}
}

// A statement cut short by QueryTimeout, or by the request's own context,
// says so through the error (errors.Is with context's errors) and counts as
// a timeout, with lib/pq too, which reports only the server's "canceling
// statement" (57014).
func TestTimeoutsAreReportedAsSuch(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db := sharedDB(t, drv)
			st := newTestStore(t, db, pgstore.Config{QueryTimeout: 300 * time.Millisecond, TouchInterval: -1})
			c := login(t, st, map[any]any{"n": 0})
			r, s := get(t, st, c)
			// Another transaction holds the row, so the update waits.
			ctx := ctxTimeout(t)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM `+qualified(st.SchemaName(), "user_sessions")+` WHERE sid = $1 FOR UPDATE`, s.ID); err != nil {
				t.Fatal(err)
			}
			s.Values["n"] = 1
			err = st.Save(r, httptest.NewRecorder(), s)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Save past QueryTimeout: %v, want context.DeadlineExceeded", err)
			}
			if got := st.Stats().Errors; got.Timeout != 1 || got.Other != 0 {
				t.Fatalf("after a timeout: %+v", got)
			}

			// The request's context is cancelled while the update waits.
			rctx, cancel := context.WithCancel(context.Background())
			r2 := r.WithContext(rctx)
			waiting := make(chan error, 1)
			go func() {
				s.Values["n"] = 2
				waiting <- st.Save(r2, httptest.NewRecorder(), s)
			}()
			awaitLockWait(t, db, st.SchemaName())
			cancel()
			if err := <-waiting; !errors.Is(err, context.Canceled) {
				t.Fatalf("Save whose request was cancelled: %v, want context.Canceled", err)
			}
			if got := st.Stats().Errors; got.Timeout != 2 || got.Other != 0 {
				t.Fatalf("after a cancelled request: %+v", got)
			}
		})
	}
}

// awaitLockWait returns once a statement on schema's table waits on a lock.
func awaitLockWait(t *testing.T, db *sql.DB, schema string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("no statement waited on the lock within 30 s")
}

// A pgxpool shared through stdlib.OpenDBFromPool keeps its own idle
// connections, below database/sql: a connection left on a read-only
// server is still dropped, and the write succeeds on a fresh one.
func TestPgxpoolReadOnlyConnectionsAreDropped(t *testing.T) {
	ctx := ctxTimeout(t)
	cfg, err := pgxpool.ParseConfig(pgtest.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns, cfg.MinConns = 4, 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	admin := sharedDB(t, "pgx")
	st := newTestStore(t, db, pgstore.Config{SchemaName: pgtest.Schema(t, admin)})
	c := login(t, st, map[any]any{"n": 0})
	r, s := get(t, st, c)
	// Every pooled connection turns read-only, as after a failover;
	// new ones are writable.
	var held []*pgxpool.Conn
	for i := 0; i < 4; i++ {
		pc, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "SET default_transaction_read_only = on"); err != nil {
			t.Fatal(err)
		}
		held = append(held, pc)
	}
	for _, pc := range held {
		pc.Release()
	}
	s.Values["n"] = 1
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatalf("Save with read-only connections in the pgxpool: %v", err)
	}
	if _, s := get(t, st, c); s.Values["n"] != 1 {
		t.Fatalf("n = %v, want 1", s.Values["n"])
	}
}

// A server out of connection slots (53300: max_connections, or here the
// role's CONNECTION LIMIT) refuses new connections only until one is
// freed: the store waits and retries within QueryTimeout.
func TestTooManyClientsIsWaitedOut(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			admin := sharedDB(t, drv)
			db, schema, role := roleDB(t, drv, admin, "pgstore_lim_")
			st := newTestStore(t, db, pgstore.Config{SchemaName: schema})
			c := login(t, st, map[any]any{"n": 1})
			// Every slot the role has is taken, by a connection outside
			// the store's pool.
			ctx := ctxTimeout(t)
			if _, err := admin.Exec(`ALTER ROLE "` + role + `" CONNECTION LIMIT 1`); err != nil {
				t.Fatal(err)
			}
			db.SetMaxIdleConns(0) // the pool must connect anew
			db.SetMaxIdleConns(2)
			holder := pgtest.OpenDSN(t, drv, withUser(pgtest.Require(t), role))
			held, err := holder.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := held.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				s, err := st.Get(request(c), cookieName)
				if err == nil && s.IsNew {
					err = errors.New("the session did not load")
				}
				done <- err
			}()
			// Free the slot once the store has been refused at least once.
			deadline := time.Now().Add(30 * time.Second)
			for st.Stats().Retries == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the store never retried")
				}
				runtime.Gosched()
			}
			held.Close()
			holder.Close()
			if err := <-done; err != nil {
				t.Fatalf("Get once a slot was freed: %v", err)
			}
		})
	}
}
