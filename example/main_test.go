package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore/internal/pgcluster"
	"github.com/pgsessions/pgstore/internal/pgproxy"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
		if exampleBinary.dir != "" {
			os.RemoveAll(exampleBinary.dir)
		}
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

	// An anonymous visit gets no session (TestAnonymousHomeVisitStoresNothing).
	if _, body := c.get("/"); !strings.Contains(body, "Not logged in") {
		t.Fatalf("first visit: page does not say \"Not logged in\":\n%s", body)
	}
	if got := c.whoami(); got != loggedOut {
		t.Errorf("whoami before login = %s, want %s", got, loggedOut)
	}

	c.login("alice")
	first := c.sessionCookie()
	if first == nil {
		t.Fatal("login set no session cookie")
	}
	if _, body := c.get("/"); !strings.Contains(body, "<strong>alice</strong>") ||
		!strings.Contains(body, "Visits in this session: 1") {
		t.Errorf("page after login does not show alice and 1 visit:\n%s", body)
	}

	// A login with a session cookie, as in a browser where an attacker
	// planted one, moves the session to a new ID.
	c.login("alice")
	loggedIn := c.sessionCookie()
	if loggedIn == nil || loggedIn.Value == first.Value {
		t.Fatal("login kept the pre-login session cookie; it must move the session to a new ID")
	}
	if loads(t, a, first) {
		t.Error("the pre-login cookie still loads a session after login (session fixation)")
	}
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami after login = %s, want %s", got, aliceJSON)
	}
	// Regenerate keeps the values: the visit before the second login counts.
	if _, body := c.get("/"); !strings.Contains(body, "Visits in this session: 2") {
		t.Errorf("page after the second login does not count 2 visits:\n%s", body)
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

// A database outage is not a logout: while the sessions database cannot be
// read, a logged-in visitor gets 503, never a page that says they are
// logged out, and nothing is saved over their session.
func TestDatabaseOutageIsNotALogout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	proxy, err := pgproxy.Start(pgtest.HostPort(cfg.DatabaseURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg.DatabaseURL = pgtest.WithHostPort(cfg.DatabaseURL, proxy.Addr())
	_, srv := startApp(t, cfg)
	c := newClient(t, srv)
	c.login("alice")
	before := c.sessionCookie()

	proxy.Close() // the database is gone for this app
	for _, path := range []string{"/", "/whoami"} {
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s during the outage: %s, Retry-After %q, body %q; want 503 with Retry-After",
				path, resp.Status, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, _ := c.post("/login", url.Values{"user": {"mallory"}}); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /login during the outage: %s, want 503", resp.Status)
	}
	if after := c.sessionCookie(); after == nil || after.Value != before.Value {
		t.Error("the outage changed or removed the session cookie")
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
	for _, tc := range []struct{ name, secret string }{
		{"missing", ""},
		{"3 bytes", "abc"},
		{"31 bytes", strings.Repeat("s", minSecretLen-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newTestLogger(t)
			_, err := configFromEnv(env(map[string]string{
				"APP_ENV":        "production",
				"SESSION_SECRET": tc.secret,
				"DATABASE_URL":   "postgres://app@db.internal/app",
			}), log)
			if err == nil || !strings.Contains(err.Error(), "SESSION_SECRET") || !strings.Contains(err.Error(), "at least 32 bytes") {
				t.Fatalf("configFromEnv(production, SESSION_SECRET of %d bytes) = %v, want an error naming SESSION_SECRET and its minimum of 32 bytes",
					len(tc.secret), err)
			}
			if tc.secret != "" && (strings.Contains(err.Error(), tc.secret) || strings.Contains(logs.String(), tc.secret)) {
				t.Errorf("the secret itself is in the error or the log: %v\n%s", err, logs)
			}
		})
	}
	// 32 bytes is enough.
	log, _ := newTestLogger(t)
	if _, err := configFromEnv(env(map[string]string{
		"APP_ENV":        "production",
		"SESSION_SECRET": strings.Repeat("s", minSecretLen),
		"DATABASE_URL":   "postgres://app@db.internal/app",
	}), log); err != nil {
		t.Errorf("configFromEnv(production, 32-byte secret) = %v", err)
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
					"postgres://postgres@127.0.0.1:6543/postgres?connect_timeout=3&sslmode=disable",
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

func TestAnonymousHomeVisitStoresNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a, srv := startApp(t, cfg)
	table := pq.QuoteIdentifier(cfg.Schema) + ".user_sessions"
	count := func() int {
		t.Helper()
		var n int
		if err := a.storage.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("count rows: %v", err)
		}
		return n
	}

	before := count()
	for range 3 { // a crawler: no cookie jar
		resp, err := srv.Client().Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Not logged in") {
			t.Fatalf("GET / = %s:\n%s", resp.Status, body)
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
			t.Errorf("a cookie-less GET / set cookies %q; an anonymous visitor needs no session", sc)
		}
	}
	if after := count(); after != before {
		t.Errorf("cookie-less GETs of / wrote %d rows; want none", after-before)
	}
}

func TestPoolKeepsIdleConnections(t *testing.T) {
	t.Parallel()
	a, _ := startApp(t, testConfig(t))
	db := a.storage.db
	if got := db.Stats().MaxOpenConnections; got != maxConns {
		t.Errorf("MaxOpenConnections = %d, want %d", got, maxConns)
	}
	// database/sql's default keeps 2 of these and closes the rest, so the
	// next burst of requests pays for new connections.
	const busy = 5
	ctx := context.Background()
	var conns []*sql.Conn
	for range busy {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Close()
	}
	if idle := db.Stats().Idle; idle < busy {
		t.Errorf("after %d connections were released, %d stay idle; want all %d", busy, idle, busy)
	}
}

// Bounds for the example run as a process. Starting a throwaway cluster
// (initdb, then the server) takes seconds, longer on a loaded machine.
const (
	startBound = 2 * time.Minute
	exitBound  = time.Minute
)

func TestProductionRefusesShortSecretAtStart(t *testing.T) {
	t.Parallel()
	p := startExample(t, "", "APP_ENV=production", "SESSION_SECRET=abc",
		"DATABASE_URL=postgres://app@127.0.0.1:1/app?sslmode=disable&connect_timeout=1")
	if code := p.wait(t, exitBound); code != 1 {
		t.Errorf("exit code %d, want 1; log:\n%s", code, p.log)
	}
	if log := p.log.String(); !strings.Contains(log, "SESSION_SECRET of at least 32 bytes") || strings.Contains(log, "listening") {
		t.Errorf("the example did not refuse a 3-byte SESSION_SECRET in production; log:\n%s", log)
	}
}

func TestThrowawayClusterRemovedOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	t.Parallel()
	tmp := clusterParent(t)
	p := startExample(t, tmp)
	base := p.listening(t)
	dir, port := throwawayCluster(t, p, tmp)
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// What closing the terminal sends.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, exitBound); code != 0 {
		t.Errorf("exit code %d after SIGHUP, want 0; log:\n%s", code, p.log)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster directory %s is still there after SIGHUP (%v); log:\n%s", dir, err, p.log)
	}
	if serverAnswers(port) {
		t.Errorf("the cluster's server still accepts connections on port %d after SIGHUP", port)
	}
}

func TestStaleClusterRemovedAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL clusters")
	}
	t.Parallel()
	tmp := clusterParent(t)
	const removedMsg = "removed a throwaway PostgreSQL cluster left by an earlier run"

	// run starts a copy of the example and waits until it serves on a
	// throwaway cluster.
	run := func() (p *exampleProcess, dir string, port int) {
		p = startExample(t, tmp)
		p.listening(t)
		dir, port = throwawayCluster(t, p, tmp)
		return p, dir, port
	}
	// SIGKILL cannot be caught: the cluster stays, and so does its server,
	// a process of its own.
	kill := func(p *exampleProcess) {
		p.cmd.Process.Kill()
		p.wait(t, exitBound)
	}

	// A run killed, whose server is then gone too (killed here; a reboot
	// would do): the next start deletes the directory.
	first, goneDir, _ := run()
	kill(first)
	pid, _ := readPostmasterPID(t, goneDir)
	if proc, err := os.FindProcess(pid); err == nil {
		proc.Kill()
	}
	second, runningDir, runningPort := run()
	if _, err := os.Stat(goneDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale cluster %s is still there after the next start (%v)", goneDir, err)
	}
	if n := strings.Count(second.log.String(), removedMsg); n != 1 {
		t.Errorf("the second run's log reports %d removed clusters, want 1:\n%s", n, second.log)
	}

	// A run killed whose server still runs: the next start stops the
	// server and deletes the directory.
	kill(second)
	if !serverAnswers(runningPort) {
		t.Fatalf("the killed run's server does not answer on port %d", runningPort)
	}
	third, ownDir, _ := run()
	if _, err := os.Stat(runningDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale cluster %s is still there after the next start (%v)", runningDir, err)
	}
	if serverAnswers(runningPort) {
		t.Errorf("the stale cluster's server still answers on port %d", runningPort)
	}
	if n := strings.Count(third.log.String(), removedMsg); n != 1 {
		t.Errorf("the third run's log reports %d removed clusters, want 1:\n%s", n, third.log)
	}

	// The running example's own cluster is not stale, and goes when it stops.
	third.cmd.Process.Signal(syscall.SIGTERM)
	if code := third.wait(t, exitBound); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if _, err := os.Stat(ownDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cluster %s is still there after SIGTERM", ownDir)
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
	t         *testing.T
	base      *url.URL
	http      *http.Client
	userAgent string // sent as User-Agent when set
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
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
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

// logBuffer collects log output written from several goroutines.
type logBuffer = pgtest.Buffer

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// exampleProcess is the example's binary, run as a child process.
type exampleProcess struct {
	cmd     *exec.Cmd
	log     *logBuffer    // its stderr
	written chan struct{} // a token whenever log grows
	exited  chan struct{} // closed when the process has exited
}

var exampleBinary struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildExample builds the example once per test run; TestMain deletes it.
func buildExample(t *testing.T) string {
	t.Helper()
	exampleBinary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			exampleBinary.err = err
			return
		}
		if exampleBinary.dir, err = os.MkdirTemp("", "pgstore-example-bin-"); err != nil {
			exampleBinary.err = err
			return
		}
		exampleBinary.path = filepath.Join(exampleBinary.dir, "example")
		if out, err := exec.Command(goTool, "build", "-o", exampleBinary.path, ".").CombinedOutput(); err != nil {
			exampleBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if errors.Is(exampleBinary.err, exec.ErrNotFound) {
		t.Skip("no go command to build the example with")
	}
	if exampleBinary.err != nil {
		t.Fatal(exampleBinary.err)
	}
	return exampleBinary.path
}

// startExample runs the example with a clean environment plus env: PORT=0
// (any free port) and, unless env says otherwise, development settings
// under which no local server answers (PGPORT=1), so that the example
// starts a throwaway cluster in tmpDir (TMPDIR). The process is killed, and
// any cluster it left is removed, when the test ends.
func startExample(t *testing.T, tmpDir string, env ...string) *exampleProcess {
	t.Helper()
	path := buildExample(t)
	cmd := exec.Command(path)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "PG"), name == "DATABASE_URL", name == "SESSION_SECRET",
			name == "APP_ENV", name == "PORT", name == "TMPDIR":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "PORT=0", "PGHOST=127.0.0.1", "PGPORT=1")
	if tmpDir != "" {
		cmd.Env = append(cmd.Env, "TMPDIR="+tmpDir)
	}
	cmd.Env = append(cmd.Env, env...)
	p := &exampleProcess{cmd: cmd, log: new(logBuffer), written: make(chan struct{}, 1), exited: make(chan struct{})}
	cmd.Stderr = notifyWriter{p}
	cmd.WaitDelay = exitBound // should a child of the example hold stderr open
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("example's log:\n%s", p.log)
		}
		if tmpDir != "" {
			// The process is gone, so its cluster, if any, is stale.
			if _, err := pgcluster.RemoveStale(tmpDir); err != nil {
				t.Errorf("remove clusters left in %s: %v", tmpDir, err)
			}
		}
	})
	return p
}

type notifyWriter struct{ p *exampleProcess }

func (w notifyWriter) Write(b []byte) (int, error) {
	n, err := w.p.log.Write(b)
	select {
	case w.p.written <- struct{}{}:
	default:
	}
	return n, err
}

// listening waits until the example logs that it listens and returns its
// base URL.
func (p *exampleProcess) listening(t *testing.T) string {
	t.Helper()
	timeout := time.NewTimer(startBound)
	defer timeout.Stop()
	for {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(line, "msg=listening") {
				_, u, _ := strings.Cut(line, "url=")
				return strings.Replace(strings.TrimSpace(u), "localhost", "127.0.0.1", 1)
			}
		}
		select {
		case <-p.written:
		case <-p.exited:
			t.Fatalf("the example exited before listening: %v; log:\n%s", p.cmd.ProcessState, p.log)
		case <-timeout.C:
			t.Fatalf("the example did not listen within %s; log:\n%s", startBound, p.log)
		}
	}
}

// wait waits for the example to exit and returns its exit code.
func (p *exampleProcess) wait(t *testing.T, bound time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(bound):
		t.Fatalf("the example did not exit within %s; log:\n%s", bound, p.log)
		return 0
	}
}

// clusterParent makes a directory for the example's throwaway clusters,
// which the test deletes at its end. It is readable by all: as root, the
// server runs as postgres, which must reach its cluster inside.
func clusterParent(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgstore-example-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// throwawayCluster returns the directory of the throwaway cluster the
// example logged it uses, checked to be in tmpDir, and its server's port. It
// skips the test when the example fell back to something else (no
// PostgreSQL binaries).
func throwawayCluster(t *testing.T, p *exampleProcess, tmpDir string) (dir string, port int) {
	t.Helper()
	for _, line := range strings.Split(p.log.String(), "\n") {
		if !strings.Contains(line, `from="throwaway cluster"`) {
			continue
		}
		_, dir, _ = strings.Cut(line, " dir=")
		dir, _, _ = strings.Cut(dir, " ")
		if unquoted, err := strconv.Unquote(dir); err == nil {
			dir = unquoted
		}
	}
	if dir == "" {
		t.Skipf("the example started no throwaway cluster; log:\n%s", p.log)
	}
	if filepath.Dir(dir) != tmpDir {
		t.Fatalf("the cluster is in %s, not in TMPDIR %s", dir, tmpDir)
	}
	_, port = readPostmasterPID(t, dir)
	return dir, port
}

// readPostmasterPID reads the server's PID and port from its
// postmaster.pid (lines 1 and 4).
func readPostmasterPID(t *testing.T, dir string) (pid, port int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		t.Fatalf("postmaster.pid: %q", b)
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil {
		t.Fatalf("postmaster.pid: %q", b)
	}
	return pid, port
}

// serverAnswers reports whether something accepts connections on port.
func serverAnswers(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
