package integration_test

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
	}))
}

// testDB is a store's database: the pool and the test's own schema, in
// which the store keeps its table (pgstore.DefaultTableName).
type testDB struct {
	db     *sql.DB
	schema string
}

// newStore returns a store with the default Config but for its key and a
// schema of its own, and the database it writes to. Everything is closed
// and dropped when t ends.
func newStore(t *testing.T) (*pgstore.Store, testDB) {
	t.Helper()
	db := pgtest.Open(t, "postgres", nil)
	cfg := pgstore.Config{
		KeyPairs:   [][]byte{randomKey(t)},
		SchemaName: pgtest.Schema(t, db),
	}
	st, err := pgstore.New(db, cfg)
	if err != nil {
		t.Fatalf("pgstore.New: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st, testDB{db: db, schema: cfg.SchemaName}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// rows returns how many sessions the store's table holds.
func (d testDB) rows(t *testing.T) int {
	t.Helper()
	var n int
	q := fmt.Sprintf(`SELECT count(*) FROM %q.%q`, d.schema, pgstore.DefaultTableName)
	if err := d.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("count sessions: %v", err)
	}
	return n
}

// sess returns the sess column of the only row in the table, as text.
func (d testDB) sess(t *testing.T) string {
	t.Helper()
	var s string
	q := fmt.Sprintf(`SELECT sess::text FROM %q.%q`, d.schema, pgstore.DefaultTableName)
	if err := d.db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("read the session row: %v", err)
	}
	return s
}

// browser is an HTTP client with a cookie jar: it keeps, sends and drops
// cookies as a browser does (domain, path, Secure, Max-Age, expiry), on
// every request, redirects included.
type browser struct {
	t      *testing.T
	client *http.Client
	srv    *httptest.Server
	base   *url.URL
}

// newBrowser returns a browser for srv, a fresh one each call (its own
// jar). It follows redirects within srv and stops at others. Over httptest.NewTLSServer it trusts the server's certificate, so
// that Secure cookies travel as they do over https.
func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		Transport: srv.Client().Transport,
		Jar:       jar,
		// Follow redirects on the test server only: one elsewhere (an
		// OAuth provider's page) is returned to the test, and nothing
		// leaves the machine.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != base.Host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return &browser{t: t, client: client, srv: srv, base: base}
}

// url returns the absolute URL of path on the browser's server.
func (b *browser) url(path string) string {
	u, err := b.base.Parse(path)
	if err != nil {
		b.t.Fatalf("parse %q: %v", path, err)
	}
	return u.String()
}

// do sends req and returns the response with its body read.
func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

// get requests path and returns the response and its body.
func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url(path), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends form to path as a browser submits a form: with an Origin
// header naming the page's origin.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.url(path), strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base.Scheme+"://"+b.base.Host)
	return b.do(req)
}

// cookie returns the jar's cookie called name for the server's root, or
// nil.
func (b *browser) cookie(name string) *http.Cookie {
	for _, c := range b.client.Jar.Cookies(b.base) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wantStatus fails the test unless resp has status want.
func wantStatus(t *testing.T, what string, resp *http.Response, body string, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, resp.StatusCode, want, body)
	}
}
