package pgstore_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// poolSize is how many idle connections the tests below leave broken in
// the pool: more than a fixed handful of retries gets through.
const poolSize = 10

// roleStore returns a store whose pool connects as a login role of the
// test's own, so that the test can change that role's sessions (and end
// them) without touching other tests'. The pool keeps poolSize idle
// connections.
func roleStore(t *testing.T, drv, prefix string) (st *pgstore.Store, db *sql.DB, admin *sql.DB, role string) {
	t.Helper()
	admin = sharedDB(t, "postgres")
	role = loginRole(t, admin, prefix)
	schema := pgtest.Schema(t, admin)
	newTestStore(t, admin, pgstore.Config{SchemaName: schema}) // the table
	for _, stmt := range []string{
		`GRANT USAGE ON SCHEMA "` + schema + `" TO "` + role + `"`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + qualified(schema, pgstore.DefaultTableName) + ` TO "` + role + `"`,
	} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db = pgtest.OpenDSN(t, drv, withUser(pgtest.Require(t), role))
	db.SetMaxOpenConns(2 * poolSize)
	db.SetMaxIdleConns(poolSize)
	return newTestStore(t, db, pgstore.Config{SchemaName: schema}), db, admin, role
}

// freshPool replaces the pool's idle connections with poolSize new ones, and
// returns when they are all idle. check runs on each while it is held.
func freshPool(t *testing.T, db *sql.DB, check func(*sql.Conn) error) {
	t.Helper()
	db.SetMaxIdleConns(0) // closes the idle connections
	db.SetMaxIdleConns(poolSize)
	checkOutAll(t, db, check)
}

// checkOutAll checks out poolSize connections at once, runs check on each, and
// puts them back.
func checkOutAll(t *testing.T, db *sql.DB, check func(*sql.Conn) error) {
	t.Helper()
	ctx := ctxTimeout(t)
	conns := make([]*sql.Conn, 0, poolSize)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range poolSize {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := check(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if n := db.Stats().Idle; n != poolSize {
		t.Fatalf("%d idle connections, want %d", n, poolSize)
	}
}

// A pool whose connections sit on a server that became read-only (a
// primary demoted in a failover, which then answers every write with
// SQLSTATE 25006) costs no failed write: the store drops each read-only
// connection it meets and retries on another, until a fresh one. Here the
// connections are read-only because they were opened while the role had
// default_transaction_read_only on; new ones are not.
func TestReadOnlyConnectionsAreReplaced(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			st, db, admin, role := roleStore(t, drv, "pgstore_ro_")
			ctx := ctxTimeout(t)
			setReadOnly := func(on bool) {
				t.Helper()
				stmt := `ALTER ROLE "` + role + `" RESET default_transaction_read_only`
				if on {
					stmt = `ALTER ROLE "` + role + `" SET default_transaction_read_only = on`
				}
				if _, err := admin.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			// readOnlyPool leaves poolSize read-only connections idle in
			// the pool, and new ones read-write.
			readOnlyPool := func() {
				t.Helper()
				setReadOnly(true)
				freshPool(t, db, func(c *sql.Conn) error {
					var ro string
					if err := c.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil || ro != "on" {
						t.Fatalf("a connection opened for the read-only role: transaction_read_only %q, %v", ro, err)
					}
					return nil
				})
				setReadOnly(false)
			}
			t.Cleanup(func() { admin.Exec(`ALTER ROLE "` + role + `" RESET default_transaction_read_only`) })
			sid := func(c *http.Cookie) string { return decodeID(t, c) }

			for _, tc := range []struct {
				name string
				// write runs on a pool of read-only connections, for a
				// request that loaded the session with cookie c before.
				write func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error
				// check looks at the rows afterwards; fresh is the cookie
				// write set, if any.
				check func(old, fresh *http.Cookie)
			}{
				{"insert", func(_ *http.Request, w http.ResponseWriter, _ *sessions.Session) error {
					r := request()
					s, err := st.Get(r, cookieName)
					if err != nil {
						return err
					}
					s.Values["user"] = "bob"
					return st.Save(r, w, s)
				}, func(_, fresh *http.Cookie) {
					if fresh == nil {
						t.Fatal("no cookie")
					}
					if sess, ok := row(t, admin, st.SchemaName(), sid(fresh)); !ok {
						t.Errorf("no row for the new session (%s)", sess)
					}
				}},
				{"update", func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
					s.Values["cart"] = "book"
					return st.Save(r, w, s)
				}, func(old, _ *http.Cookie) {
					if _, s := get(t, st, old); s.Values["cart"] != "book" {
						t.Errorf("the update did not land: %v", s.Values)
					}
				}},
				{"regenerate", func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
					return st.Regenerate(r, w, s)
				}, func(old, fresh *http.Cookie) {
					if fresh == nil {
						t.Fatal("no cookie")
					}
					if _, ok := row(t, admin, st.SchemaName(), sid(old)); ok {
						t.Error("the old row is still there")
					}
					if _, s := get(t, st, fresh); s.Values["user"] != "alice" {
						t.Errorf("the regenerated session holds %v", s.Values)
					}
				}},
				{"logout", func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
					s.Options.MaxAge = -1
					return st.Save(r, w, s)
				}, func(old, _ *http.Cookie) {
					if _, ok := row(t, admin, st.SchemaName(), sid(old)); ok {
						t.Error("the row is still there")
					}
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					freshPool(t, db, func(*sql.Conn) error { return nil }) // read-write, after a failed case
					c := login(t, st, map[any]any{"user": "alice"})
					r, s := get(t, st, c)
					readOnlyPool()
					w := httptest.NewRecorder()
					if err := tc.write(r, w, s); err != nil {
						t.Fatalf("%s on a pool of %d read-only connections: %v", tc.name, poolSize, err)
					}
					tc.check(c, responseCookie(w, cookieName))
				})
			}
		})
	}
}

// awaitNoBackends polls until no backend of role is left: terminated
// backends take a moment to exit. (pg_terminate_backend's own wait checks
// every 100 ms.)
func awaitNoBackends(t *testing.T, admin *sql.DB, role string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var left int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&left); err != nil {
			t.Fatalf("%v (backends of the role still running after their termination)", err)
		}
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d backends of the role still running 10 s after their termination", left)
		case <-tick.C:
		}
	}
}

// pgxLivenessWindow is how long after its last check-out pgx's stdlib
// driver hands out a connection without pinging it first (stdlib.Conn's
// ResetSession): inside it, a connection the server ended is found dead
// only by the query that runs on it.
const pgxLivenessWindow = time.Second

// A pool whose idle connections were all ended by the server
// (pg_terminate_backend: an administrator, a failover, a pooler restart)
// costs no failed request: Get and Save retry until they reach a live
// connection, however many dead ones the pool held.
//
// pgx reports such a connection as an error (57P01) without marking it
// broken, so a fixed handful of retries over ten dead connections failed.
// lib/pq reports driver.ErrBadConn, which database/sql retries on its own
// (then on a new connection): its subtest pins that, and passes whatever
// the store retries.
func TestTerminatedConnectionsAreReplaced(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			st, db, admin, role := roleStore(t, drv, "pgstore_term_")
			c := login(t, st, map[any]any{"user": "alice"})
			// terminatePool leaves poolSize connections idle in the pool,
			// ended by the server within pgx's liveness window of their
			// last check-out, so that the driver does not find out first.
			terminatePool := func() {
				t.Helper()
				ctx := ctxTimeout(t)
				freshPool(t, db, func(*sql.Conn) error { return nil })
				for attempt := 1; ; attempt++ {
					checkedOut := time.Now()
					checkOutAll(t, db, func(c *sql.Conn) error { return c.PingContext(ctx) })
					var ended int
					err := admin.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
						FROM pg_stat_activity WHERE usename = $1`, role).Scan(&ended)
					if err != nil {
						t.Fatal(err)
					}
					if ended != poolSize {
						t.Fatalf("terminated %d backends of the role, want %d", ended, poolSize)
					}
					awaitNoBackends(t, admin, role)
					if time.Since(checkedOut) < pgxLivenessWindow*7/10 {
						return
					}
					if attempt == 5 {
						t.Fatalf("could not end the connections within %v of their check-out in %d attempts", pgxLivenessWindow, attempt)
					}
					freshPool(t, db, func(*sql.Conn) error { return nil }) // new ones, to try again
				}
			}

			terminatePool()
			r := request(c)
			s, err := st.Get(r, cookieName)
			if err != nil || s.IsNew || s.Values["user"] != "alice" {
				t.Fatalf("Get on a pool of %d terminated connections: new %v, values %v, %v", poolSize, s.IsNew, s.Values, err)
			}
			terminatePool()
			s.Values["cart"] = "book"
			if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
				t.Fatalf("Save on a pool of %d terminated connections: %v", poolSize, err)
			}
			if _, s := get(t, st, c); s.Values["cart"] != "book" {
				t.Errorf("the save did not land: %v", s.Values)
			}
		})
	}
}
