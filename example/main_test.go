package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
		os.Exit(code)
	}))
}

const (
	loggedOut  = `{"user":null}`
	aliceJSON  = `{"user":"alice"}`
	thirtyDays = 30 * 24 * 60 * 60
)

func TestLoginWhoamiLogout(t *testing.T) {
	t.Parallel()
	a, srv := startApp(t, testConfig(t))
	c := newClient(t, srv)

	// An anonymous visit already has a session: the visit counter is in it.
	if _, body := c.get("/"); !strings.Contains(body, "Visits in this session: 1") {
		t.Fatalf("first visit: page does not count 1 visit:\n%s", body)
	}
	anonymous := c.sessionCookie()
	if anonymous == nil {
		t.Fatal("first visit set no session cookie")
	}
	if got := c.whoami(); got != loggedOut {
		t.Errorf("whoami before login = %s, want %s", got, loggedOut)
	}

	c.login("alice")
	loggedIn := c.sessionCookie()
	if loggedIn == nil || loggedIn.Value == anonymous.Value {
		t.Fatal("login kept the pre-login session cookie; it must move the session to a new ID")
	}
	if loads(t, a, anonymous) {
		t.Error("the pre-login cookie still loads a session after login (session fixation)")
	}
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami after login = %s, want %s", got, aliceJSON)
	}
	// Regenerate keeps the values: the visit before login still counts.
	if _, body := c.get("/"); !strings.Contains(body, "<strong>alice</strong>") ||
		!strings.Contains(body, "Visits in this session: 2") {
		t.Errorf("page after login does not show alice and 2 visits:\n%s", body)
	}

	resp, _ := c.post("/logout", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("logout: %s to %q, want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	if got := c.whoami(); got != loggedOut {
		t.Errorf("whoami after logout = %s, want %s", got, loggedOut)
	}
	if c.sessionCookie() != nil {
		t.Error("logout left the session cookie in the browser")
	}
	if loads(t, a, loggedIn) {
		t.Error("the cookie from before logout still loads a session")
	}
}

func TestLogoutAnswersJSONClients(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	c := newClient(t, srv)
	c.login("alice")

	resp, body := c.do(http.MethodPost, "/logout", nil, "Accept", "application/json")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != loggedOut {
		t.Errorf("logout with Accept: application/json = %s %s, want 200 %s", resp.Status, body, loggedOut)
	}
	if got := c.whoami(); got != loggedOut {
		t.Errorf("whoami after logout = %s, want %s", got, loggedOut)
	}
}

func TestLoginValidatesUser(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	for _, tc := range []struct {
		name, user string
		want       int
	}{
		{"empty", "", http.StatusBadRequest},
		{"only spaces", "   ", http.StatusBadRequest},
		{"65 characters", strings.Repeat("a", 65), http.StatusBadRequest},
		{"control character", "al\x00ice", http.StatusBadRequest},
		{"invalid UTF-8", "al\xffice", http.StatusBadRequest},
		{"64 characters", strings.Repeat("é", 64), http.StatusSeeOther},
		{"HTML", "<b>bob</b>", http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, srv)
			resp, _ := c.post("/login", url.Values{"user": {tc.user}})
			if resp.StatusCode != tc.want {
				t.Errorf("POST /login user=%q: %s, want %d", tc.user, resp.Status, tc.want)
			}
		})
	}
}

func TestHomePageEscapesUser(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	c := newClient(t, srv)
	c.login("<script>x</script>")
	_, body := c.get("/")
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;x&lt;/script&gt;") {
		t.Errorf("the user name is not HTML-escaped:\n%s", body)
	}
}

func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	first, srv := startApp(t, cfg)
	c := newClient(t, srv)
	c.login("alice")
	cookie := c.sessionCookie()

	srv.Close()
	if err := first.Close(); err != nil {
		t.Fatalf("close the first app: %v", err)
	}

	// A new process: a new Store on the same table, the same key.
	_, srv = startApp(t, cfg)
	c = newClient(t, srv)
	c.setSessionCookie(cookie)
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami after restart = %s, want %s", got, aliceJSON)
	}
}

func TestInstancesShareSessions(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	_, srv1 := startApp(t, cfg)
	_, srv2 := startApp(t, cfg)
	c1, c2 := newClient(t, srv1), newClient(t, srv2)

	c1.login("alice")
	c2.setSessionCookie(c1.sessionCookie())
	if got := c2.whoami(); got != aliceJSON {
		t.Errorf("second instance: whoami = %s, want %s", got, aliceJSON)
	}

	// A logout on one instance ends the session on the other.
	c2.post("/logout", nil)
	if got := c1.whoami(); got != loggedOut {
		t.Errorf("first instance after logout on the second: whoami = %s, want %s", got, loggedOut)
	}
}

func TestProductionRequiresSessionSecret(t *testing.T) {
	log, _ := newTestLogger(t)
	_, err := configFromEnv(env(map[string]string{
		"APP_ENV":      "production",
		"DATABASE_URL": "postgres://app@db.internal/app",
	}), log)
	if err == nil || !strings.Contains(err.Error(), "SESSION_SECRET") {
		t.Fatalf("configFromEnv(production, no SESSION_SECRET) = %v, want an error naming SESSION_SECRET", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	longSecret := strings.Repeat("s", 48)
	shortSum := sha256.Sum256([]byte("short"))
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string // a word the error must contain; "" for none
		check   func(t *testing.T, cfg appConfig)
	}{
		{
			name:    "production without DATABASE_URL",
			env:     map[string]string{"APP_ENV": "production", "SESSION_SECRET": longSecret},
			wantErr: "DATABASE_URL",
		},
		{
			name:    "unknown APP_ENV",
			env:     map[string]string{"APP_ENV": "prod"},
			wantErr: "APP_ENV",
		},
		{
			name: "production",
			env: map[string]string{"APP_ENV": "production", "SESSION_SECRET": longSecret,
				"DATABASE_URL": "postgres://app@db.internal/app"},
			check: func(t *testing.T, cfg appConfig) {
				if !cfg.Production || cfg.Throwaway || len(cfg.LocalDSNs) != 0 {
					t.Errorf("production config falls back: %+v", cfg)
				}
				if string(cfg.HashKey) != longSecret {
					t.Error("a secret of 32+ bytes is not used as the key as it is")
				}
			},
		},
		{
			name: "short secret is hashed",
			env:  map[string]string{"SESSION_SECRET": "short"},
			check: func(t *testing.T, cfg appConfig) {
				if !bytes.Equal(cfg.HashKey, shortSum[:]) {
					t.Errorf("HashKey = %x, want SHA-256 of the secret", cfg.HashKey)
				}
			},
		},
		{
			name: "development defaults",
			env:  map[string]string{"PGUSER": "dev", "PGPORT": "6543"},
			check: func(t *testing.T, cfg appConfig) {
				if cfg.Production || len(cfg.HashKey) != 32 || !cfg.Throwaway {
					t.Errorf("development config: %+v", cfg)
				}
				want := []string{
					"postgres://dev@127.0.0.1:6543/dev?connect_timeout=3&sslmode=disable",
					"postgres://dev@127.0.0.1:6543/postgres?connect_timeout=3&sslmode=disable",
				}
				if strings.Join(cfg.LocalDSNs, " ") != strings.Join(want, " ") {
					t.Errorf("LocalDSNs = %q, want %q", cfg.LocalDSNs, want)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := newTestLogger(t)
			cfg, err := configFromEnv(env(tc.env), log)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.check != nil:
				tc.check(t, cfg)
			}
		})
	}
}

func TestSecureCookieOnlyInProduction(t *testing.T) {
	t.Parallel()
	for _, production := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Production = production
		_, srv := startApp(t, cfg)
		resp, _ := newClient(t, srv).post("/login", url.Values{"user": {"alice"}})

		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == sessionName {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatalf("production=%v: login set no %q cookie", production, sessionName)
		}
		if cookie.Secure != production {
			t.Errorf("production=%v: Secure = %v", production, cookie.Secure)
		}
		if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.MaxAge != thirtyDays || cookie.Path != "/" {
			t.Errorf("production=%v: cookie %s, want HttpOnly, SameSite=Lax, Max-Age=%d, Path=/",
				production, cookie, thirtyDays)
		}
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	resp, body := newClient(t, srv).get("/healthz")
	if resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %s %q, want 200 \"ok\\n\"", resp.Status, body)
	}
}

// unreachable is a DSN where nothing listens.
const unreachable = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"

func TestLocalServerFallback(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.LocalDSNs = []string{unreachable, cfg.DatabaseURL}
	cfg.DatabaseURL = ""
	log, logs := newTestLogger(t)
	cfg.Logger = log

	a, srv := startApp(t, cfg)
	if a.storage.db == nil || !strings.Contains(logs.String(), `msg="Session storage: PostgreSQL" from=localhost`) {
		t.Fatalf("the second local DSN was not used; log:\n%s", logs)
	}
	c := newClient(t, srv)
	c.login("alice")
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami = %s, want %s", got, aliceJSON)
	}
}

func TestCookieStoreFallback(t *testing.T) {
	t.Parallel()
	log, logs := newTestLogger(t)
	a, srv := startApp(t, appConfig{HashKey: randomKey(t), LocalDSNs: []string{unreachable}, Logger: log})
	if a.storage.db != nil {
		t.Fatal("the app found a database at an unreachable DSN")
	}
	for _, warning := range []string{"DEVELOPMENT ONLY", "Set DATABASE_URL"} {
		if !strings.Contains(logs.String(), warning) {
			t.Errorf("the log does not warn %q:\n%s", warning, logs)
		}
	}

	c := newClient(t, srv)
	c.login("alice")
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami = %s, want %s", got, aliceJSON)
	}
	c.post("/logout", nil)
	if got := c.whoami(); got != loggedOut {
		t.Errorf("whoami after logout = %s, want %s", got, loggedOut)
	}
	if resp, _ := c.get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz = %s, want 200", resp.Status)
	}
}

func TestThrowawayClusterFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Parallel()
	log, logs := newTestLogger(t)
	cfg := appConfig{HashKey: randomKey(t), LocalDSNs: []string{unreachable}, Throwaway: true, Logger: log}
	a, err := newApp(context.Background(), cfg)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	if a.storage.db == nil {
		a.Close()
		pgtest.SkipOrFail(t, fmt.Errorf("no throwaway cluster could be started; log:\n%s", logs))
	}
	srv := httptest.NewServer(a)
	c := newClient(t, srv)
	c.login("alice")
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami = %s, want %s", got, aliceJSON)
	}
	srv.Close()
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !strings.Contains(logs.String(), "throwaway PostgreSQL cluster stopped and deleted") {
		t.Errorf("Close did not remove the cluster; log:\n%s", logs)
	}
}

// testConfig returns a configuration on the test server, with the sessions
// table in a schema of the test's own. It skips the test when there is no
// server.
func testConfig(t *testing.T) appConfig {
	t.Helper()
	dsn := pgtest.Require(t)
	log, _ := newTestLogger(t)
	return appConfig{
		HashKey:     randomKey(t),
		DatabaseURL: dsn,
		Schema:      pgtest.Schema(t, pgtest.OpenDSN(t, "postgres", dsn)),
		Logger:      log,
	}
}

func randomKey(t *testing.T) []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

// startApp serves a new app over HTTP until the test ends.
func startApp(t *testing.T, cfg appConfig) (*app, *httptest.Server) {
	t.Helper()
	a, err := newApp(context.Background(), cfg)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() {
		srv.Close()
		if err := a.Close(); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	return a, srv
}

// loads reports whether the cookie still loads a stored session.
func loads(t *testing.T, a *app, cookie *http.Cookie) bool {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(cookie)
	s, err := a.storage.store.Get(r, sessionName)
	if err != nil {
		t.Fatalf("load session: %v", err)
	}
	return !s.IsNew
}

// client is a browser: it keeps cookies, and shows each redirect rather
// than following it.
type client struct {
	t    *testing.T
	base *url.URL
	http *http.Client
}

func newClient(t *testing.T, srv *httptest.Server) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(srv.URL)
	return &client{t: t, base: base, http: &http.Client{
		Transport:     srv.Client().Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request, with a form when form is not nil and headers as
// name, value pairs, and returns the response and its body.
func (c *client) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base.String()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	return c.do(http.MethodGet, path, nil)
}

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return c.do(http.MethodPost, path, form)
}

func (c *client) login(user string) {
	c.t.Helper()
	resp, body := c.post("/login", url.Values{"user": {user}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		c.t.Fatalf("login as %q: %s %s, want 303 to /", user, resp.Status, body)
	}
}

// whoami returns the body of GET /whoami, without the final newline.
func (c *client) whoami() string {
	c.t.Helper()
	resp, body := c.get("/whoami")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		c.t.Fatalf("GET /whoami: %s %s %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return strings.TrimSpace(body)
}

func (c *client) sessionCookie() *http.Cookie {
	for _, ck := range c.http.Jar.Cookies(c.base) {
		if ck.Name == sessionName {
			return ck
		}
	}
	return nil
}

func (c *client) setSessionCookie(ck *http.Cookie) {
	c.http.Jar.SetCookies(c.base, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
}

// newTestLogger returns a logger that records everything, and prints it
// when the test fails.
func newTestLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	logs := new(logBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), logs
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}
