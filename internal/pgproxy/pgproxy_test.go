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
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
		os.Exit(code)
	}))
}

// target returns the test server's DSN and "host:port". Without a server
// reachable over TCP it ends t as pgtest.SkipOrFail says.
func target(t *testing.T) (dsn, addr string) {
	t.Helper()
	dsn = pgtest.Require(t)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		pgtest.SkipOrFail(t, fmt.Errorf("PostgreSQL at %q is a Unix socket; pgproxy needs TCP", cfg.Host))
	}
	return dsn, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
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
	dsn, addr := target(t)
	p, err := pgproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	db, err := sql.Open(driver, proxiedDSN(dsn, p.Addr()))
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

// TestPingsAreNotRoundTrips: whenever database/sql hands out a pooled
// connection whose last ResetSession was more than a second ago, pgx's
// stdlib driver first sends a ping (the simple query "-- ping"): on the
// first reuse of every new connection (never reset yet), and on any reuse
// after a second idle, which a loaded test machine cannot rule out. The
// proxy counts pings apart, so that round-trip counts do not depend on
// timing. The first reuse shows it without waiting: its ping is certain.
// lib/pq never pings.
func TestPingsAreNotRoundTrips(t *testing.T) {
	for driver, ping := range map[string]int64{"postgres": 0, "pgx": 1} {
		t.Run(driver, func(t *testing.T) {
			p, db := open(t, driver, 1) // one new connection, not reused yet
			exec := func() error { _, err := db.Exec("SELECT 1"); return err }
			if got := cost(t, p, exec); got != 1 {
				t.Errorf("first reuse: %d round trips %q, want 1", got, p.Statements())
			}
			if got := p.Pings(); got != ping {
				t.Errorf("first reuse: %d pings, want %d", got, ping)
			}
			if st := p.Statements(); !slices.Equal(st, []string{"SELECT 1"}) {
				t.Errorf("first reuse: Statements() = %q, want [SELECT 1]", st)
			}
			// Whether this one pings depends on the clock; the count does not.
			if got := cost(t, p, exec); got != 1 {
				t.Errorf("second reuse: %d round trips %q, want 1", got, p.Statements())
			}
		})
	}
}

// Await fires when the statement it names is sent, before the server has
// answered, and not for other statements.
func TestAwait(t *testing.T) {
	p, db := open(t, "postgres", 2)
	sleeping := p.Await("pg_sleep")
	never := p.Await("no statement says this")
	if _, err := db.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sleeping:
		t.Fatal("Await(pg_sleep) fired on SELECT 1")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	select {
	case <-sleeping:
	case err := <-done:
		t.Fatalf("pg_sleep returned (%v) and Await did not fire", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Await(pg_sleep) did not fire within 10s")
	}
	select {
	case err := <-done:
		t.Errorf("Await fired only after pg_sleep(30) returned: %v", err)
	default: // still sleeping: Await fired when the statement was sent
	}
	cancel()
	<-done
	select {
	case <-never:
		t.Error("Await fired for a statement nobody sent")
	default:
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
			// The new connection counts like any other, pgx's first-reuse
			// ping left out.
			exec := func() error { _, err := db.Exec("SELECT 1"); return err }
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
	// Close waits for its goroutines. A goroutine that has called
	// wg.Done may still be on its way out of a proxy frame for a moment,
	// so the count gets a bounded wait to reach zero; a goroutine Close
	// forgot would stay.
	n := proxyGoroutines()
	for deadline := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(deadline); n = proxyGoroutines() {
		runtime.Gosched()
	}
	if n != 0 {
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
