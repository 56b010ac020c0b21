package pgstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgproxy"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runner{m}, goleak.Cleanup(func(code int) {
		pgtest.Stop()
		os.Exit(code)
	}))
}

// runner closes the shared pools after the tests and before goleak looks
// for leftover goroutines.
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

var (
	hashKey1  = bytes.Repeat([]byte{1}, 32)
	hashKey2  = bytes.Repeat([]byte{2}, 32)
	blockKey1 = bytes.Repeat([]byte{3}, 32)
)

// shared holds one pool per driver for tests that need nothing special.
var shared sync.Map

// sharedDB returns the shared pool for driverName. Without a server it
// fails t under CI or with DATABASE_URL set, and skips it elsewhere.
func sharedDB(t testing.TB, driverName string) *sql.DB {
	t.Helper()
	if db, ok := shared.Load(driverName); ok {
		return db.(*sql.DB)
	}
	dsn := pgtest.Require(t)
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if prev, loaded := shared.LoadOrStore(driverName, db); loaded {
		db.Close()
		return prev.(*sql.DB)
	}
	return db
}

// eachDriver runs f as parallel subtests, once with lib/pq and once with
// pgx's stdlib driver; for the tests in throughPooler (pooler_test.go),
// also once with each through PgBouncer in transaction mode.
func eachDriver(t *testing.T, f func(t *testing.T, db *sql.DB)) {
	t.Helper()
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			f(t, sharedDB(t, drv))
		})
	}
	if test, _, _ := strings.Cut(t.Name(), "/"); throughPooler[test] {
		for _, drv := range pgtest.Drivers {
			t.Run(drv+"_via_pgbouncer", func(t *testing.T) {
				t.Parallel()
				f(t, pooledDB(t, drv))
			})
		}
	}
}

// clock is an injectable time source for both clocks a store reads: the
// app server's (TestHooks.Now) and the database's (TestHooks.DBNow, a
// function over a one-row table in a schema of the clock's own). Advance
// moves both.
type clock struct {
	mu sync.Mutex
	t  time.Time
	db *sql.DB
	fn string // the SQL expression reading the database's side
}

func newClock(t testing.TB, db *sql.DB) *clock {
	t.Helper()
	c := &clock{t: time.Now().Truncate(time.Second), db: db}
	schema := pgtest.Schema(t, db)
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	c.fn = q(schema) + ".clock_now()"
	for _, stmt := range []string{
		`CREATE TABLE ` + q(schema) + `.clock (t timestamptz NOT NULL)`,
		`CREATE FUNCTION ` + c.fn + ` RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT t FROM ` + q(schema) + `.clock'`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("clock: %v", err)
		}
	}
	if _, err := db.Exec(`INSERT INTO `+q(schema)+`.clock VALUES ($1)`, c.t); err != nil {
		t.Fatalf("clock: %v", err)
	}
	return c
}

// hooks are the store seams that read this clock.
func (c *clock) hooks() pgstore.TestHooks {
	return pgstore.TestHooks{Now: c.Now, DBNow: c.fn}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	if _, err := c.db.Exec(`UPDATE `+strings.TrimSuffix(c.fn, ".clock_now()")+`.clock SET t = $1`, c.t); err != nil {
		panic("clock: " + err.Error())
	}
}

// newTestStore returns a store in a schema of its own (unless cfg names
// one), with test keys unless cfg has keys, and the background pruner off
// unless cfg sets an interval. It is closed when t ends.
func newTestStore(t testing.TB, db *sql.DB, cfg pgstore.Config, h ...pgstore.TestHooks) *pgstore.Store {
	t.Helper()
	if cfg.SchemaName == "" {
		cfg.SchemaName = pgtest.Schema(t, db)
	}
	if cfg.KeyPairs == nil && cfg.ExpressSecrets == nil {
		cfg.KeyPairs = [][]byte{hashKey1}
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = -1
	}
	if isPooled(db) {
		poolerConfig(&cfg)
	}
	var hooks pgstore.TestHooks
	if len(h) > 0 {
		hooks = h[0]
	}
	st, err := pgstore.NewWithHooks(db, cfg, hooks)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// request returns a GET request carrying cookies.
func request(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return r
}

// responseCookie returns the cookie called name that w set, or nil.
func responseCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// get loads the session for a request with cookie c.
func get(t testing.TB, st *pgstore.Store, c *http.Cookie) (*http.Request, *sessions.Session) {
	t.Helper()
	r := request(c)
	s, err := st.Get(r, cookieName)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r, s
}

// save saves s and returns the cookie set, if any.
func save(t testing.TB, st *pgstore.Store, r *http.Request, s *sessions.Session) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return responseCookie(w, s.Name())
}

// login creates a session holding values and returns its cookie.
func login(t testing.TB, st *pgstore.Store, values map[any]any) *http.Cookie {
	t.Helper()
	r, s := get(t, st, nil)
	for k, v := range values {
		s.Values[k] = v
	}
	c := save(t, st, r, s)
	if c == nil {
		t.Fatal("Save of a new session with values set no cookie")
	}
	return c
}

// rowCount counts the rows of the sessions table in schema.
func rowCount(t testing.TB, db *sql.DB, schema, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + qualified(schema, table)).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

func qualified(schema, table string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if schema == "" {
		return q(table)
	}
	return q(schema) + "." + q(table)
}

// row reads the sess and expire (as text, in the connection's zone) of sid.
func row(t *testing.T, db *sql.DB, schema, sid string) (sess string, ok bool) {
	t.Helper()
	err := db.QueryRow(`SELECT sess::text FROM `+qualified(schema, pgstore.DefaultTableName)+` WHERE sid = $1`, sid).Scan(&sess)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatalf("read row: %v", err)
	}
	return sess, true
}

// decodeID returns the session ID inside a securecookie cookie.
func decodeID(t testing.TB, c *http.Cookie, keyPairs ...[]byte) string {
	t.Helper()
	if len(keyPairs) == 0 {
		keyPairs = [][]byte{hashKey1}
	}
	var id []byte
	codecs := securecookie.CodecsFromPairs(keyPairs...)
	for _, cd := range codecs {
		cd.(*securecookie.SecureCookie).SetSerializer(securecookie.NopEncoder{})
	}
	if err := securecookie.DecodeMulti(c.Name, c.Value, &id, codecs...); err != nil {
		t.Fatalf("decode cookie: %v", err)
	}
	return string(id)
}

// proxied returns a pool for driverName that goes through a round-trip
// counting proxy to the test server.
func proxied(t testing.TB, driverName string) (*sql.DB, *pgproxy.Proxy) {
	t.Helper()
	return proxiedWith(t, driverName, nil)
}

// ctxTimeout is a context for test queries.
func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a bytes.Buffer safe for concurrent writers: loggers,
// child processes' output.
type syncBuffer = pgtest.Buffer

// newAtOnce runs n calls of open at the same moment, as n processes
// starting together would, closes the stores they return, and returns the
// first error.
func newAtOnce(n int, open func(i int) (*pgstore.Store, error)) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := open(i)
			if err != nil {
				errs <- err
				return
			}
			errs <- st.Close()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// loginRole creates a login role for the test, named prefix and a suffix
// of the test's own, and drops it (and what it owns) afterwards. Where
// roles cannot be created it skips the test, or fails it under CI.
func loginRole(t *testing.T, db *sql.DB, prefix string) string {
	t.Helper()
	role := prefix + strings.ReplaceAll(pgtest.Schema(t, db), "pgstore_test_", "")
	if _, err := db.Exec(`CREATE ROLE "` + role + `" LOGIN`); err != nil {
		pgtest.SkipOrFail(t, fmt.Errorf("cannot create a role here: %w", err))
	}
	t.Cleanup(func() {
		db.Exec(`DROP OWNED BY "` + role + `"`)
		db.Exec(`DROP ROLE "` + role + `"`)
	})
	return role
}

// column returns the first column of query's rows, as text.
func column(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
