package bench_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgproxy"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// benchSessions is how many sessions the benchmarks spread their requests
// over, so parallel writers do not queue on one row.
const benchSessions = 64

// benchEnv is a store on a table of its own holding benchSessions logged-in
// sessions, on the shared pool of benchDriver.
type benchEnv struct {
	db      *sql.DB
	st      *pgstore.Store
	schema  string
	table   string // quoted and schema-qualified
	cookies []*http.Cookie
	ids     []string // each session's sid
	sess    []string // each session's sess as stored, for the raw baseline
}

func newBenchEnv(b *testing.B, cfg pgstore.Config) *benchEnv {
	b.Helper()
	db := sharedDB(b, benchDriver())
	db.SetMaxOpenConns(2 * runtime.GOMAXPROCS(0))
	db.SetMaxIdleConns(2 * runtime.GOMAXPROCS(0))
	cfg.SchemaName = pgtest.Schema(b, db)
	e := &benchEnv{db: db, st: newStore(b, db, cfg), schema: cfg.SchemaName, table: qualified(cfg.SchemaName, pgstore.DefaultTableName)}
	for i := 0; i < benchSessions; i++ {
		user := fmt.Sprintf("user%d@example.com", i)
		e.cookies = append(e.cookies, e.login(b, map[any]any{"user_id": 1000 + i, "user": user, "csrf": "0123456789abcdef0123456789abcdef"}))
		var id, sess string
		if err := db.QueryRow(`SELECT sid, sess FROM `+e.table+` WHERE sess ->> 'user' = $1`, user).Scan(&id, &sess); err != nil {
			b.Fatal(err)
		}
		e.ids = append(e.ids, id)
		e.sess = append(e.sess, sess)
	}
	return e
}

// login saves a new session holding values and returns its cookie.
func (e *benchEnv) login(b *testing.B, values map[any]any) *http.Cookie {
	b.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	s, err := e.st.Get(r, cookieName)
	if err != nil {
		b.Fatalf("Get: %v", err)
	}
	for k, v := range values {
		s.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := e.st.Save(r, w, s); err != nil {
		b.Fatalf("Save: %v", err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	b.Fatal("Save of a new session with values set no cookie")
	return nil
}

// benchRequest is a reusable request. Each use must start from reset,
// because the store (like gorilla's registry) records state in the
// request's context.
type benchRequest struct {
	r, orig http.Request
}

// request returns a request carrying the cookie of session i, or no cookie
// when i is negative.
func (e *benchEnv) request(i int) *benchRequest {
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil).WithContext(requestContext())
	if i >= 0 {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: e.cookies[i%len(e.cookies)].Value})
	}
	return &benchRequest{r: *r, orig: *r}
}

func (br *benchRequest) reset() *http.Request {
	br.r = br.orig
	return &br.r
}

// requestContext is a context like the one net/http gives every handler:
// cancellable. Both the store and the raw baseline query with one, as any
// server does; with context.Background, lib/pq would skip its per-query
// cancel watcher, which no server request does.
func requestContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	_ = cancel // lives as long as the benchmark process
	return ctx
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func newDiscard() *discard { return &discard{h: http.Header{}} }

func (d *discard) Header() http.Header {
	for k := range d.h {
		delete(d.h, k)
	}
	return d.h
}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// insertRows writes n rows expiring at expire straight into table, with
// sids prefix1 to prefixN and an empty sess.
func insertRows(b *testing.B, db *sql.DB, table string, n int, expire time.Time, prefix string) {
	b.Helper()
	_, err := db.Exec(`INSERT INTO `+table+` (sid, sess, expire)
		SELECT $1 || g, '{}', to_timestamp($2) AT TIME ZONE 'UTC' FROM generate_series(1, $3) g`,
		prefix, expire.Unix(), n)
	if err != nil {
		b.Fatal(err)
	}
}

// qualified quotes schema and table for SQL text.
func qualified(schema, table string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(schema) + "." + q(table)
}

// proxied returns a pool for driverName that reaches the server through a
// proxy which reports the statements sent.
func proxied(b *testing.B, driverName string) (*sql.DB, *pgproxy.Proxy) {
	b.Helper()
	dsn := pgtest.Require(b)
	p, err := pgproxy.Start(pgtest.HostPort(dsn))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	db := pgtest.OpenDSN(b, driverName, pgtest.WithParams(pgtest.WithHostPort(dsn, p.Addr()), map[string]string{"sslmode": "disable"}))
	return db, p
}
