package pgstore_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// With Config.TransactionPooler, New refuses driver settings a transaction
// pooler breaks, and says what to change.
func TestTransactionPoolerChecksDriver(t *testing.T) {
	dsn := pgtest.Require(t)
	cases := []struct {
		name, driver string
		params       map[string]string
		want         string // in New's error; "" means New succeeds
	}{
		{"lib/pq two round trips", "postgres", nil, "binary_parameters=yes"},
		{"lib/pq binary_parameters off", "postgres", map[string]string{"binary_parameters": "no"}, "binary_parameters=yes"},
		{"lib/pq binary_parameters", "postgres", map[string]string{"binary_parameters": "yes"}, ""},
		{"pgx named statements", "pgx", nil, "default_query_exec_mode=exec"},
		{"pgx cache_statement", "pgx", map[string]string{"default_query_exec_mode": "cache_statement"}, "default_query_exec_mode=exec"},
		{"pgx exec", "pgx", map[string]string{"default_query_exec_mode": "exec"}, ""},
		{"pgx simple_protocol", "pgx", map[string]string{"default_query_exec_mode": "simple_protocol"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.OpenDSN(t, tc.driver, pgtest.WithParams(dsn, tc.params))
			cfg := pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: pgtest.Schema(t, db), PruneInterval: -1, TransactionPooler: true}
			st, err := pgstore.New(db, cfg)
			if tc.want != "" {
				if err == nil {
					st.Close()
					t.Fatal("New accepted driver settings a transaction pooler breaks")
				}
				if !errors.Is(err, pgstore.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("New: %v; want ErrConfig naming %s", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			c := login(t, st, map[any]any{"user": "ada"})
			if _, s := get(t, st, c); s.Values["user"] != "ada" {
				t.Fatalf("session: %v", s.Values)
			}
		})
	}
}

// The check looks at its own probe only: the application's own prepared
// statements on the connection are none of its business.
func TestTransactionPoolerCheckIgnoresOtherStatements(t *testing.T) {
	db := pgtest.Open(t, "postgres", map[string]string{"binary_parameters": "yes"})
	db.SetMaxOpenConns(1)
	stmt, err := db.Prepare("SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	st, err := pgstore.New(db, pgstore.Config{TransactionPooler: true, KeyPairs: [][]byte{hashKey1},
		SchemaName: pgtest.Schema(t, db), PruneInterval: -1})
	if err != nil {
		t.Fatalf("New with an application statement prepared on the connection: %v", err)
	}
	st.Close()
}

// Open adds binary_parameters=yes for a transaction pooler, unless the
// DSN says otherwise.
func TestOpenSetsBinaryParameters(t *testing.T) {
	dsn := pgtest.Require(t)
	admin := sharedDB(t, "postgres")
	st, err := pgstore.Open(dsn, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: pgtest.Schema(t, admin),
		PruneInterval: -1, TransactionPooler: true})
	if err != nil {
		t.Fatalf("Open with TransactionPooler: %v", err)
	}
	defer st.Close()
	if _, s := get(t, st, login(t, st, map[any]any{"n": 1})); s.Values["n"] != 1 {
		t.Fatalf("session: %v", s.Values)
	}
	_, err = pgstore.Open(pgtest.WithParams(dsn, map[string]string{"binary_parameters": "no"}),
		pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: pgtest.Schema(t, admin), PruneInterval: -1, TransactionPooler: true})
	if !errors.Is(err, pgstore.ErrConfig) {
		t.Fatalf("Open with binary_parameters=no: %v", err)
	}
}

// Behind a transaction pooler the store leaves nothing in a server
// session: no prepared statement, no advisory lock, and it still loads a
// session in one round trip.
func TestTransactionPoolerLeavesNoSessionState(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxiedWith(t, drv, oneShot[drv])
			db.SetMaxOpenConns(1) // so that the checks below see the store's server session
			st := newTestStore(t, db, pgstore.Config{TransactionPooler: true, TouchInterval: -1})
			c := login(t, st, map[any]any{"n": 0})
			proxy.Reset()
			r, s := get(t, st, c)
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("Get took %d round trips, want 1", n)
			}
			s.Values["n"] = 1
			proxy.Reset()
			if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
				t.Fatal(err)
			}
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("Save took %d round trips, want 1", n)
			}
			r, s = get(t, st, c)
			if err := st.Regenerate(r, httptest.NewRecorder(), s); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Revoke(context.Background(), "n", 1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.PruneRound(context.Background()); err != nil {
				t.Fatal(err)
			}
			var prepared, locks int
			if err := db.QueryRow(`SELECT (SELECT count(*) FROM pg_prepared_statements),
				(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())`).Scan(&prepared, &locks); err != nil {
				t.Fatal(err)
			}
			if prepared != 0 || locks != 0 {
				t.Fatalf("the store left %d prepared statements and %d advisory locks in its server session", prepared, locks)
			}
		})
	}
}

// Without Config.TransactionPooler, a prepared statement that vanished
// from the server session (as behind a transaction pooler) is reported
// with the setting to change.
func TestMissingPreparedStatementNamesTheSetting(t *testing.T) {
	db := pgtest.Open(t, "postgres", nil)
	db.SetMaxOpenConns(1)
	st := newTestStore(t, db, pgstore.Config{})
	c := login(t, st, map[any]any{"n": 1})
	if _, err := db.Exec(`DEALLOCATE ALL`); err != nil {
		t.Fatal(err)
	}
	_, err := st.Get(request(c), cookieName)
	if err == nil || !strings.Contains(err.Error(), "Config.TransactionPooler") {
		t.Fatalf("Get with its prepared statement gone: %v", err)
	}
}

// A name clash on the server connection (as when a pooler hands the store
// another client's connection) is reported with the setting to change too.
func TestPreparedStatementClashNamesTheSetting(t *testing.T) {
	db := pgtest.Open(t, "postgres", nil)
	db.SetMaxOpenConns(1)
	// lib/pq names its prepared statements "1", "2", ... on each connection.
	if _, err := db.Exec(`PREPARE "1" AS SELECT 1`); err != nil {
		t.Fatal(err)
	}
	_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: pgtest.Schema(t, sharedDB(t, "postgres")), PruneInterval: -1})
	if err == nil || !strings.Contains(err.Error(), "Config.TransactionPooler") {
		t.Fatalf("New with its statement's name taken: %v", err)
	}
}

// A pgx-native app shares its pgxpool with the store through
// stdlib.OpenDBFromPool.
func TestPgxpoolShared(t *testing.T) {
	dsn := pgtest.Require(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // last: after the store and the *sql.DB
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { db.Close() })
	st := newTestStore(t, db, pgstore.Config{})
	c := login(t, st, map[any]any{"user": "ada"})
	r, s := get(t, st, c)
	if s.Values["user"] != "ada" {
		t.Fatalf("session: %v", s.Values)
	}
	w := httptest.NewRecorder()
	if err := st.Regenerate(r, w, s); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Revoke(context.Background(), "user", "ada"); err != nil || n != 1 {
		t.Fatalf("Revoke: %d, %v", n, err)
	}
	// The app's own queries run on the same pool.
	var one int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+qualified(st.SchemaName(), "user_sessions")).Scan(&one); err != nil {
		t.Fatal(err)
	}
	if one != 0 {
		t.Fatalf("%d rows after Revoke, want 0", one)
	}
}
