package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// The Node side of the Express interop tests: finding Node, installing the
// app in testdata/express (express-session and connect-pg-simple) with npm,
// starting it on a table of the test's own, and talking to it over HTTP.

const (
	expressDir        = "testdata/express"
	expressCookieName = "connect.sid"
	thirtyDaysMS      = 30 * 24 * 3600 * 1000

	newSecret = "new-secret: rotated in"
	oldSecret = "old-secret: still verified"
)

// skipNodeEnv names the switch that skips the tests needing Node outside
// CI.
const skipNodeEnv = "PGSTORE_SKIP_NODE"

// nodeCheck remembers, for the whole run, whether Node can run the app.
var nodeCheck struct {
	once sync.Once
	err  error
}

// requireNode makes sure Node.js 20+ can run the app, installing its
// packages once when they are missing, and fails t when it cannot. Outside
// CI, PGSTORE_SKIP_NODE=1 skips t instead, before looking for Node or
// running npm. Under CI the switch is refused: CI must run these tests.
func requireNode(t *testing.T) {
	t.Helper()
	if v := os.Getenv(skipNodeEnv); pgtest.InCI() && v != "" && v != "0" {
		t.Fatalf("%s=%s under CI: CI must run the Express interop tests; unset it", skipNodeEnv, v)
	} else if v == "1" {
		t.Skipf("%s=1: skipping the Express interop tests (they need Node.js 20+ and the packages of %s)", skipNodeEnv, expressDir)
	}
	nodeCheck.once.Do(func() {
		if nodeCheck.err = findNode(); nodeCheck.err != nil {
			nodeCheck.err = fmt.Errorf("the Express interop tests (%s) need Node.js 20+: %w; install Node.js 20 or newer%s",
				expressDir, nodeCheck.err, skipHint())
			return
		}
		nodeCheck.err = installExpressApp()
	})
	if nodeCheck.err != nil {
		t.Fatal(nodeCheck.err)
	}
}

// skipHint names the switch in failure messages, where it would help.
func skipHint() string {
	if pgtest.InCI() {
		return " (CI cannot skip these tests)"
	}
	return ", or set " + skipNodeEnv + "=1 to skip these tests"
}

func findNode() error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH")
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return fmt.Errorf("node --version: %w", err)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		return fmt.Errorf("found node %s", version)
	}
	return nil
}

// npmCI installs the app's packages from package-lock.json. npm's own
// defaults wait about 70 s on a registry that refuses connections (two
// retries, 10 to 60 s apart) and 5 minutes on one that does not answer; these
// flags make a dead registry fail within seconds, and installTimeout bounds
// the whole install. .ci/run runs the same command.
var npmCI = []string{"ci", "--no-audit", "--no-fund",
	"--fetch-retries=2", "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=4000", "--fetch-timeout=30000"}

const installTimeout = 3 * time.Minute

// installExpressApp runs npm ci unless the packages are installed and at
// least as new as the lock file (npm writes node_modules/.package-lock.json
// last, so a failed install does not count).
func installExpressApp() error {
	lock, err := os.Stat(filepath.Join(expressDir, "package-lock.json"))
	if err != nil {
		return err
	}
	if done, err := os.Stat(filepath.Join(expressDir, "node_modules", ".package-lock.json")); err == nil && !done.ModTime().Before(lock.ModTime()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", npmCI...)
	cmd.Dir = expressDir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	what := fmt.Sprintf("npm %s in %s", strings.Join(npmCI, " "), expressDir)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s did not finish within %v; the Express interop tests need its packages%s\n%s", what, installTimeout, skipHint(), out)
	case registryUnreachable(out):
		return fmt.Errorf("%s could not reach the npm registry (%v): the Express interop tests need the app's packages; "+
			"restore access to the registry (or its mirror in npm's registry setting)%s\n%s", what, err, skipHint(), out)
	default:
		return fmt.Errorf("%s: %v%s\n%s", what, err, skipHint(), out)
	}
}

// registryUnreachable reports whether npm's output says it could not connect
// to the registry, as opposed to a broken lock file or a failing install
// script.
func registryUnreachable(npmOutput []byte) bool {
	for _, code := range []string{"ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET",
		"ENETUNREACH", "EHOSTUNREACH", "ERR_SOCKET_TIMEOUT"} {
		if bytes.Contains(npmOutput, []byte("npm error code "+code)) {
			return true
		}
	}
	return bytes.Contains(npmOutput, []byte("npm error network"))
}

// expressOptions configure one run of the app.
type expressOptions struct {
	secrets []string
	// maxAgeMS is COOKIE_MAX_AGE_MS: "" for the app's 30 days, "null" for
	// a browser-session cookie.
	maxAgeMS string
	// partitioned and priority are COOKIE_PARTITIONED and COOKIE_PRIORITY:
	// express-session's cookie options of those names.
	partitioned bool
	priority    string
	// resave is express-session's resave option (SESSION_RESAVE).
	resave bool
}

// expressApp is a running Node process serving the app.
type expressApp struct {
	base   string
	client *http.Client
	stderr *syncBuffer
}

// expressSchema returns a schema of its own for a test, after checking that
// the database and Node are there. The Go stores create the table in it.
func expressSchema(t *testing.T) string {
	t.Helper()
	requireNode(t)
	return pgtest.Schema(t, sharedDB(t, "postgres"))
}

// startExpress runs node app.js on schema and stops it (SIGTERM, then wait)
// when t ends.
func startExpress(t *testing.T, schema string, o expressOptions) *expressApp {
	t.Helper()
	requireNode(t)
	dsn := pgtest.Require(t)
	if !strings.Contains(dsn, "://") {
		t.Fatal("the Express interop tests need a postgres:// URL as DATABASE_URL: node-postgres does not read key=value DSNs")
	}
	secrets, err := json.Marshal(o.secrets)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "app.js")
	cmd.Dir = expressDir
	// Later entries win, so the test's settings override the caller's
	// environment.
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dsn,
		"SESSION_SCHEMA="+schema,
		"SESSION_TABLE="+pgstore.DefaultTableName,
		"SESSION_SECRETS="+string(secrets),
		"COOKIE_NAME="+expressCookieName,
		"COOKIE_MAX_AGE_MS="+o.maxAgeMS,
		"COOKIE_PARTITIONED="+strconv.FormatBool(o.partitioned),
		"COOKIE_PRIORITY="+o.priority,
		"SESSION_RESAVE="+strconv.FormatBool(o.resave),
		"PORT=0",
	)
	stdout := &portWriter{port: make(chan string, 1)}
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node app.js: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	transport := &http.Transport{DisableKeepAlives: true}
	app := &expressApp{client: &http.Client{Transport: transport, Timeout: 10 * time.Second}, stderr: stderr}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		select {
		case <-exited: // it died on its own; waitErr says how
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Errorf("node did not exit within 10s of SIGTERM")
			}
		}
		if waitErr != nil {
			t.Errorf("node app.js: %v\nstderr:\n%s", waitErr, stderr)
		} else if t.Failed() {
			t.Logf("node stderr:\n%s", stderr)
		}
	})
	select {
	case port := <-stdout.port:
		app.base = "http://127.0.0.1:" + port
	case <-exited:
		t.Fatalf("node app.js exited before listening: %v\nstderr:\n%s", waitErr, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("node app.js printed no \"listening <port>\" line within 30s\nstderr:\n%s", stderr)
	}
	return app
}

// portWriter is the app's stdout: it reports the port from the first
// "listening <port>" line and drops the rest.
type portWriter struct {
	mu      sync.Mutex
	pending []byte
	found   bool
	port    chan string
}

func (w *portWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found {
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := strings.TrimSpace(string(w.pending[:i]))
		w.pending = w.pending[i+1:]
		if port, ok := strings.CutPrefix(line, "listening "); ok {
			w.found, w.pending = true, nil
			w.port <- port
			return len(p), nil
		}
	}
}

// do sends a request to the app with the session cookie (as the header a
// browser sends, no jar) and returns the status, the body and the session
// cookie the app set, if any.
func (a *expressApp) do(t *testing.T, method, path, cookie string) (int, []byte, *http.Cookie) {
	t.Helper()
	return a.doBody(t, method, path, cookie, nil)
}

// doBody is do with a request body.
func (a *expressApp) doBody(t *testing.T, method, path, cookie string, body io.Reader) (int, []byte, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.Header.Set("Cookie", expressCookieName+"="+cookie)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("node %s %s: %v\nstderr:\n%s", method, path, err, a.stderr)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("node %s %s: read body: %v", method, path, err)
	}
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == expressCookieName {
			set = c
		}
	}
	return resp.StatusCode, answer, set
}

// call is do for requests that must succeed; it decodes the JSON answer
// into out.
func (a *expressApp) call(t *testing.T, method, path, cookie string, out any) *http.Cookie {
	t.Helper()
	status, body, set := a.do(t, method, path, cookie)
	if status != http.StatusOK {
		t.Fatalf("node %s %s: status %d: %s\nstderr:\n%s", method, path, status, body, a.stderr)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("node %s %s: %v in %s", method, path, err, body)
		}
	}
	return set
}

// login logs user in on Node and returns the session cookie's value, as
// sent in Set-Cookie (URL-encoded), and the session ID.
func (a *expressApp) login(t *testing.T, user string) (cookie, sid string) {
	t.Helper()
	var resp struct{ SID, User string }
	set := a.call(t, http.MethodPost, "/login?user="+url.QueryEscape(user), "", &resp)
	if set == nil || resp.SID == "" || resp.User != user {
		t.Fatalf("node login: cookie %v, answer %+v", set, resp)
	}
	return set.Value, resp.SID
}

type whoami struct {
	User    any            `json:"user"`
	SID     string         `json:"sid"`
	Session map[string]any `json:"session"`
}

func (a *expressApp) whoami(t *testing.T, cookie string) whoami {
	t.Helper()
	var w whoami
	a.call(t, http.MethodGet, "/whoami", cookie, &w)
	return w
}

func (a *expressApp) set(t *testing.T, cookie, key, value string) {
	t.Helper()
	q := url.Values{"key": {key}, "value": {value}}
	a.call(t, http.MethodPost, "/set?"+q.Encode(), cookie, nil)
}

// setJSON sets key to the JSON value text on Node, through the request
// body (for values a query string cannot carry).
func (a *expressApp) setJSON(t *testing.T, cookie, key, value string) {
	t.Helper()
	status, body, _ := a.doBody(t, http.MethodPost, "/setjson?key="+url.QueryEscape(key), cookie, strings.NewReader(value))
	if status != http.StatusOK {
		t.Fatalf("node setjson %s: status %d: %s\nstderr:\n%s", key, status, body, a.stderr)
	}
}

func (a *expressApp) incr(t *testing.T, cookie string) int {
	t.Helper()
	var resp struct{ Counter int }
	a.call(t, http.MethodPost, "/incr", cookie, &resp)
	return resp.Counter
}

// serverZone is the TimeZone a connection gets when it does not ask for
// one, as Node's connections do: connect-pg-simple writes expire in it.
var serverZone struct {
	once sync.Once
	zone string
	err  error
}

func nodeTimeZone(t *testing.T) string {
	t.Helper()
	db := sharedDB(t, "postgres")
	serverZone.once.Do(func() {
		serverZone.err = db.QueryRow(`SHOW TimeZone`).Scan(&serverZone.zone)
	})
	if serverZone.err != nil {
		t.Fatalf("SHOW TimeZone: %v", serverZone.err)
	}
	return serverZone.zone
}
