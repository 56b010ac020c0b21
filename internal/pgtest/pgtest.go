// Package pgtest finds a real PostgreSQL server for tests, the way the
// example app does: DATABASE_URL, else the local server pgcluster.LocalDSNs
// lists, else a throwaway cluster (pgcluster.StartCluster) started from the
// PostgreSQL binaries when they are installed. It is test support only, not
// part of pgstore's API; programs use pgcluster, which does not import
// testing.
//
// A test that finds no server fails under CI and when DATABASE_URL names one
// that does not answer; elsewhere it skips and says why (see SkipOrFail), so
// that a run which tested nothing never reports ok where it matters.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "github.com/lib/pq"              // driver "postgres"
	"github.com/pgsessions/pgstore/internal/pgcluster"
)

// Drivers are the database/sql drivers the suites run against.
var Drivers = []string{"postgres", "pgx"}

var (
	once      sync.Once
	found     string
	findErr   error
	throwaway *pgcluster.Cluster
)

// DSN returns a URL for a reachable server, or an error that says how to get
// one. The first call may start a throwaway cluster; Stop stops it.
func DSN() (string, error) {
	once.Do(func() { found, findErr = find() })
	return found, findErr
}

// Stop stops the shared PgBouncer, if Bouncer started one, and the
// throwaway cluster, if DSN started one. Call it from TestMain after the
// tests ran.
func Stop() {
	stopBouncer()
	if throwaway != nil {
		throwaway.Remove()
	}
}

// ErrDatabaseURL is wrapped by the error DSN returns when DATABASE_URL is set
// and its server does not answer. The user asked for that server, so tests
// fail rather than skip.
var ErrDatabaseURL = errors.New("DATABASE_URL is set but the server does not answer")

func find() (string, error) {
	if dsn := os.Getenv("DATABASE_URL"); dsn != "" {
		if err := ping(dsn); err != nil {
			return "", fmt.Errorf("%w (%s): %w", ErrDatabaseURL, redact(dsn), err)
		}
		return dsn, nil
	}
	var tried []string
	for _, dsn := range pgcluster.LocalDSNs(os.Getenv) {
		err := ping(dsn)
		if err == nil {
			return dsn, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", redact(dsn), err))
	}
	c, err := pgcluster.StartCluster()
	if err == nil {
		throwaway = c
		return c.DSN(), nil
	}
	tried = append(tried, "throwaway cluster: "+err.Error())
	return "", fmt.Errorf("no PostgreSQL server found; set DATABASE_URL (for example postgres://user@localhost:5432/db?sslmode=disable), "+
		"run one on 127.0.0.1:5432 (or set PGHOST, PGPORT, PGUSER, PGDATABASE), or install the PostgreSQL server binaries (initdb, pg_ctl). Tried:\n  %s",
		strings.Join(tried, "\n  "))
}

func ping(dsn string) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// WithParams returns dsn with extra connection parameters, for example
// {"options": "-c TimeZone=Asia/Tokyo"}. dsn may be a URL or key=value.
func WithParams(dsn string, params map[string]string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		dsn += " " + k + "='" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`) + "'"
	}
	return dsn
}

// Require returns the test server's DSN. When there is none it ends t as
// SkipOrFail says.
func Require(t testing.TB) string {
	t.Helper()
	dsn, err := DSN()
	if err != nil {
		SkipOrFail(t, err)
	}
	return dsn
}

// InCI reports whether the tests run under CI: the CI environment variable
// is set to anything but "", "0" or "false" (GitHub Actions, GitLab and
// .ci/run set it to "true" or "1").
func InCI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// SkipOrFail ends t, which cannot run because err kept it from the database
// (no server, or no throwaway cluster for a test that needs its own). It
// fails t under CI, where a skipped database test would let a run pass
// without testing anything, and when err wraps ErrDatabaseURL, since the
// user named that server; otherwise it skips t. Either way the message
// says why.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	switch {
	case InCI():
		t.Fatalf("%v\n(this is a failure, not a skip, because CI is set: CI must run the database tests)", err)
	case errors.Is(err, ErrDatabaseURL):
		t.Fatalf("%v\n(this is a failure, not a skip: DATABASE_URL names the server to test against; unset it to skip the database tests)", err)
	default:
		t.Skipf("skipped for want of PostgreSQL: %v\n(under CI, or with DATABASE_URL set, this would fail)", err)
	}
}

// Open returns a pool on the test server through driverName ("postgres" for
// lib/pq, "pgx" for pgx's stdlib), closed when t ends. Without a server it
// ends t as SkipOrFail says.
func Open(t testing.TB, driverName string, params map[string]string) *sql.DB {
	t.Helper()
	return OpenDSN(t, driverName, WithParams(Require(t), params))
}

// OpenDSN is Open for an explicit DSN.
func OpenDSN(t testing.TB, driverName, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", driverName, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Schema creates a schema with a unique name and drops it, with everything
// in it, when t ends. Tests use it so that they run in parallel and never
// touch a real sessions table.
func Schema(t testing.TB, db *sql.DB) string {
	t.Helper()
	name := "pgstore_test_" + randomHex(6)
	if _, err := db.Exec(`CREATE SCHEMA "` + name + `"`); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA "`+name+`" CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// HostPort returns the "host:port" of a URL or key=value DSN (default
// 127.0.0.1:5432).
func HostPort(dsn string) string {
	host, port := "127.0.0.1", "5432"
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if h := u.Hostname(); h != "" {
			host = h
		}
		if p := u.Port(); p != "" {
			port = p
		}
	} else {
		for _, f := range strings.Fields(dsn) {
			k, v, _ := strings.Cut(f, "=")
			switch v = strings.Trim(v, "'"); k {
			case "host":
				host = v
			case "port":
				port = v
			}
		}
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// WithHostPort returns dsn pointed at addr ("host:port") instead.
func WithHostPort(dsn, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Host = addr
		if u.User == nil {
			u.User = url.User("postgres")
		}
		q := u.Query()
		q.Del("host")
		q.Del("port")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " host=" + host + " port=" + port
}
