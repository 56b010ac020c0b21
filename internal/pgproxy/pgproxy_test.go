package pgproxy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "github.com/lib/pq"              // registers driver "postgres"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const defaultDSN = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable"

// baseDSN is DATABASE_URL when set, else the local test server.
func baseDSN() string {
	if s := os.Getenv("DATABASE_URL"); s != "" {
		return s
	}
	return defaultDSN
}

// target returns the server's "host:port", skipping the test when the
// server cannot be reached over TCP.
func target(t *testing.T) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(baseDSN())
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("PostgreSQL at %q is a Unix socket; pgproxy needs TCP", cfg.Host)
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("PostgreSQL not reachable at %s (set DATABASE_URL): %v", addr, err)
	}
	c.Close()
	return addr
}

// proxiedDSN points dsn at the proxy, without TLS so the proxy can parse it.
// Later keywords win in both drivers, so appending overrides host and port.
func proxiedDSN(dsn, proxyAddr string) string {
	host, port, _ := net.SplitHostPort(proxyAddr)
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Host = proxyAddr
		q := u.Query()
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return fmt.Sprintf("%s host=%s port=%s sslmode=disable", dsn, host, port)
}

// open starts a proxy and a pool of at most maxConns connections through it,
// both closed when the test ends. It pings once, so the pool holds one new
// connection that has not been reused; the counters then start at zero.
func open(t *testing.T, driver string, maxConns int) (*pgproxy.Proxy, *sql.DB) {
	t.Helper()
	p, err := pgproxy.Start(target(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	db, err := sql.Open(driver, proxiedDSN(baseDSN(), p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.Ping(); err != nil {
		t.Fatalf("ping through proxy: %v", err)
	}
	p.Reset()
	return p, db
}

// cost runs f and returns the round trips it took.
func cost(t *testing.T, p *pgproxy.Proxy, f func() error) int64 {
	t.Helper()
	p.Reset()
	if err := f(); err != nil {
		t.Fatal(err)
	}
	return p.RoundTrips()
}

// TestRoundTrips records what common database/sql calls cost per driver.
//
// lib/pq sends an unprepared query with arguments as Parse+Describe+Sync,
// then Bind+Execute+Sync: two round trips, every time. pgx (default mode
// QueryExecModeCacheStatement) does the same the first time it sees a SQL
// text, then keeps the prepared statement per connection, so later runs of
// the same text cost one. Both run a query without arguments as one simple
// Query, and a statement from db.Prepare as one Bind+Execute+Sync.
func TestRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		driver                 string
		prepare, prepared      int64
		adHocFirst, adHocLater int64
		execNoArgs             int64
	}{
		{driver: "postgres", prepare: 1, prepared: 1, adHocFirst: 2, adHocLater: 2, execNoArgs: 1},
		{driver: "pgx", prepare: 1, prepared: 1, adHocFirst: 2, adHocLater: 1, execNoArgs: 1},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			p, db := open(t, tc.driver, 1)
			// Reuse the connection once, so pgx's first-reuse ping (see
			// TestResetSessionPing) happens before anything is measured.
			if err := db.Ping(); err != nil {
				t.Fatal(err)
			}
			const prepSQL = "SELECT $1::int + 1"
			var stmt *sql.Stmt
			got := cost(t, p, func() (err error) { stmt, err = db.Prepare(prepSQL); return err })
			if got != tc.prepare {
				t.Errorf("db.Prepare: %d round trips %q, want %d", got, p.Statements(), tc.prepare)
			}
			defer stmt.Close()
			if !slices.Contains(p.Statements(), prepSQL) {
				t.Errorf("Statements() = %q, want it to contain %q", p.Statements(), prepSQL)
			}
			for i := range 5 {
				var n int
				got := cost(t, p, func() error { return stmt.QueryRow(i).Scan(&n) })
				if got != tc.prepared || n != i+1 {
					t.Errorf("prepared run %d: %d round trips (result %d), want %d", i, got, n, tc.prepared)
				}
			}
			for i := range 3 {
				want := tc.adHocLater
				if i == 0 {
					want = tc.adHocFirst
				}
				var n int
				got := cost(t, p, func() error { return db.QueryRow("SELECT $1::int * 2", i).Scan(&n) })
				if got != want {
					t.Errorf("unprepared QueryRow run %d: %d round trips, want %d", i, got, want)
				}
			}
			got = cost(t, p, func() error { _, err := db.Exec("SELECT 1"); return err })
			if got != tc.execNoArgs {
				t.Errorf(`db.Exec("SELECT 1"): %d round trips, want %d`, got, tc.execNoArgs)
			}
			if st := p.Statements(); !slices.Equal(st, []string{"SELECT 1"}) {
				t.Errorf("Statements() after Exec = %q, want [SELECT 1]", st)
			}
		})
	}
}

// TestResetSessionPing documents a pgx stdlib trait that tests measuring
// round trips must allow for: whenever database/sql hands out a pooled
// connection whose last ResetSession was more than a second ago, pgx first
// sends a ping (the simple query "-- ping"). That is the first reuse of
// every new connection (never reset yet) and any reuse after a second idle.
// lib/pq never pings.
func TestResetSessionPing(t *testing.T) {
	for driver, ping := range map[string]int64{"postgres": 0, "pgx": 1} {
		t.Run(driver, func(t *testing.T) {
			p, db := open(t, driver, 1) // one new connection, not reused yet
			exec := func() error { _, err := db.Exec("SELECT 1"); return err }
			if got := cost(t, p, exec); got != 1+ping {
				t.Errorf("first reuse: %d round trips %q, want %d", got, p.Statements(), 1+ping)
			}
			if got := cost(t, p, exec); got != 1 {
				t.Errorf("second reuse: %d round trips %q, want 1", got, p.Statements())
			}
			time.Sleep(1100 * time.Millisecond)
			if got := cost(t, p, exec); got != 1+ping {
				t.Errorf("reuse after 1.1s idle: %d round trips %q, want %d", got, p.Statements(), 1+ping)
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	const workers, runs = 4, 25
	p, db := open(t, "postgres", workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range runs {
				if _, err := db.Exec("SELECT 1"); err != nil {
					errs <- err
					return
				}
				_ = p.RoundTrips()
				_ = p.Statements()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := p.RoundTrips(); got != workers*runs {
		t.Errorf("RoundTrips() = %d, want %d", got, workers*runs)
	}
	if got := len(p.Statements()); got != workers*runs {
		t.Errorf("len(Statements()) = %d, want %d", got, workers*runs)
	}
}

func TestDropConnections(t *testing.T) {
	for _, driver := range []string{"postgres", "pgx"} {
		t.Run(driver, func(t *testing.T) {
			p, db := open(t, driver, 1)
			var pid1, pid2 int
			if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid1); err != nil {
				t.Fatal(err)
			}
			p.DropConnections()
			// The pooled connection is dead. Depending on when the driver
			// notices, this query fails or database/sql retries on a new one.
			err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid2)
			t.Logf("first query after DropConnections: err=%v", err)
			if err != nil {
				if err := db.QueryRow("SELECT pg_backend_pid()").Scan(&pid2); err != nil {
					t.Fatalf("proxy unusable after DropConnections: %v", err)
				}
			}
			if pid2 == pid1 {
				t.Errorf("still on backend %d after DropConnections", pid1)
			}
			// The new connection counts like any other (the first Exec may
			// carry pgx's first-reuse ping, so measure the second).
			exec := func() error { _, err := db.Exec("SELECT 1"); return err }
			cost(t, p, exec)
			if got := cost(t, p, exec); got != 1 {
				t.Errorf("after reconnect: %d round trips %q, want 1", got, p.Statements())
			}
		})
	}
}

// TestCancelRequest checks that a context cancellation reaches the server
// through the proxy: lib/pq sends a CancelRequest on a second connection
// and keeps waiting for the server's answer on the first, so the 10 s sleep
// ends early only if the request got through. The cancel connection is not
// counted. (lib/pq then discards the connection; the pool opens a new one.)
func TestCancelRequest(t *testing.T) {
	p, db := open(t, "postgres", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := cost(t, p, func() error {
		if _, err := db.ExecContext(ctx, "SELECT pg_sleep(10)"); err == nil {
			return errors.New("pg_sleep(10) was not canceled")
		}
		return nil
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	if got != 1 {
		t.Errorf("canceled query: %d round trips, want 1", got)
	}
	if _, err := db.Exec("SELECT 1"); err != nil {
		t.Errorf("query after cancel: %v", err)
	}
}

// proxyGoroutines counts goroutines running code of package pgproxy.
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/pgproxy.(*Proxy)") {
			n++
		}
	}
	return n
}

func TestClose(t *testing.T) {
	p, db := open(t, "postgres", 4) // one spare for the last Ping
	ctx := context.Background()
	for range 3 { // hold three live connections through the proxy
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := proxyGoroutines(); n < 7 { // accept loop + 2 per connection
		t.Errorf("%d proxy goroutines with 3 live connections, want at least 7", n)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waits for its goroutines, so none may be left right away.
	if n := proxyGoroutines(); n != 0 {
		t.Errorf("%d proxy goroutines after Close, want 0", n)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	p.DropConnections() // harmless after Close
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("proxy still accepts connections after Close")
	}
	if err := db.Ping(); err == nil {
		t.Error("ping succeeded through a closed proxy")
	}
}
