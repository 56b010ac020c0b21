package pgstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgcluster"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// A failover under load: the primary crashes in the middle of logins,
// reads and logouts, and its synchronous standby is promoted. The store,
// on a DSN that lists both servers and asks for the writable one, serves
// again without a restart; every login it acknowledged is still there with
// its values, no logout it acknowledged is undone, and during the switch
// it reports errors: Get never hands out an empty session for a live one
// (which would log the user out without a word), and no write that failed
// is reported as done.
//
// The times from the crash and from the promotion to the first request
// served again are logged (never asserted) for the documentation.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a primary and a standby for each driver")
	}
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			pair, err := pgcluster.StartReplicated()
			if err != nil {
				pgtest.SkipOrFail(t, fmt.Errorf("start a primary and a synchronous standby: %w", err))
			}
			t.Cleanup(pair.Remove)
			st := openFailoverStore(t, drv, pair.DSN())
			srv := httptest.NewServer(sessionApp(st))
			t.Cleanup(srv.Close)
			traffic := newTraffic(t, srv)

			traffic.await(traffic.warmedUp, "the load did not log 40 users in and 5 out")
			traffic.mark(&traffic.killedAt)
			if err := pair.Primary.Kill(); err != nil {
				traffic.stop()
				t.Fatal(err)
			}
			traffic.mark(&traffic.killDone)
			traffic.await(traffic.failed, "no request failed with the primary down")
			traffic.mark(&traffic.promotedAt)
			if err := pair.Standby.Promote(); err != nil {
				traffic.stop()
				t.Fatal(err)
			}
			traffic.mark(&traffic.promoteDone)
			// The store serves again without a restart...
			traffic.awaitWithin(traffic.served, 30*time.Second, "no request succeeded within 30 s of the promotion")
			// ...and keeps serving: logins on the new primary.
			traffic.await(traffic.cooledDown, "the load did not log 20 users in after the promotion")
			traffic.stop()
			traffic.check()
		})
	}
}

// openFailoverStore opens a store on dsn as an application would: with
// pgstore.Open for lib/pq, and with New on a pool of pgx's stdlib.
func openFailoverStore(t *testing.T, drv, dsn string) *pgstore.Store {
	t.Helper()
	cfg := pgstore.Config{
		KeyPairs:      [][]byte{hashKey1},
		PruneInterval: -1,
		QueryTimeout:  2 * time.Second,
		SchemaName:    pgtest.Schema(t, pgtest.OpenDSN(t, "postgres", dsn)),
	}
	var st *pgstore.Store
	var err error
	switch drv {
	case "postgres":
		st, err = pgstore.Open(dsn, cfg)
	case "pgx":
		db := pgtest.OpenDSN(t, drv, dsn)
		db.SetMaxOpenConns(pgstore.OpenMaxConns)
		db.SetMaxIdleConns(pgstore.OpenMaxConns)
		st, err = pgstore.New(db, cfg)
	default:
		t.Fatalf("no store for driver %q", drv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

// sessionApp is the application under load. It answers 503 with the error
// when the store fails, and reports in the X-Session header whether Get
// loaded the request's session ("loaded") or handed out a new one ("new").
//
//	POST /visit   an anonymous session with a cart
//	POST /login   Get, Regenerate with the user, then Save a second value
//	GET  /me      the user, or 401 when the session is new
//	POST /logout  Get, then Save with MaxAge -1 (even when Get failed)
func sessionApp(st *pgstore.Store) http.Handler {
	fail := func(w http.ResponseWriter, step string, err error) {
		http.Error(w, step+": "+err.Error(), http.StatusServiceUnavailable)
	}
	loaded := func(w http.ResponseWriter, isNew bool) {
		if isNew {
			w.Header().Set("X-Session", "new")
		} else {
			w.Header().Set("X-Session", "loaded")
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /visit", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, cookieName)
		if err != nil {
			fail(w, "get", err)
			return
		}
		s.Values["cart"] = "book"
		if err := st.Save(r, w, s); err != nil {
			fail(w, "save", err)
		}
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, cookieName)
		if err != nil {
			fail(w, "get", err)
			return
		}
		loaded(w, s.IsNew)
		s.Values["user"] = r.FormValue("user")
		if err := st.Regenerate(r, w, s); err != nil {
			fail(w, "regenerate", err)
			return
		}
		s.Values["login"] = r.FormValue("login")
		if err := st.Save(r, w, s); err != nil {
			fail(w, "save", err)
		}
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, cookieName)
		if err != nil {
			fail(w, "get", err)
			return
		}
		loaded(w, s.IsNew)
		if s.IsNew {
			http.Error(w, "anonymous", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%v %v %v", s.Values["user"], s.Values["login"], s.Values["cart"])
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, cookieName)
		if err == nil {
			loaded(w, s.IsNew)
		}
		s.Options.MaxAge = -1
		if err := st.Save(r, w, s); err != nil {
			fail(w, "save", err)
		}
	})
	return mux
}

// account is a login the app acknowledged, as its user's browser knows it.
type account struct {
	user, login string
	cookie      *http.Cookie
	anonymous   *http.Cookie // the session the login regenerated; nil if none
	acked       int64        // when the login was acknowledged (traffic.now)
	state       accountState
}

type accountState int

const (
	loggedIn   accountState = iota
	loggingOut              // a logout was sent and not acknowledged: either outcome is right
	loggedOut               // a logout was acknowledged
)

// traffic is the load: clients that visit, log in, read and log out over
// HTTP, each with its own accounts, checking every answer against what the
// app acknowledged before. It notes the first failure and the first success
// of requests sent after the crash, and the events the test waits on.
type traffic struct {
	t      *testing.T
	srv    *httptest.Server
	start  time.Time
	halt   atomic.Bool
	wg     sync.WaitGroup
	stopMu sync.Once

	// Instants as time since start; 0 until they happen.
	killedAt, killDone, promotedAt, promoteDone atomic.Int64
	firstFailure, firstSuccess                  atomic.Int64

	failed, served                    chan struct{}
	warmedUp, cooledDown              chan struct{}
	failOnce, serveOnce, warm, cool   sync.Once
	logins, logouts, loginsAfter      atomic.Int64
	getErrors, writeErrors, otherErrs atomic.Int64

	mu         sync.Mutex
	accounts   []*account
	violations []string
}

const trafficClients = 4

func newTraffic(t *testing.T, srv *httptest.Server) *traffic {
	tr := &traffic{
		t: t, srv: srv, start: time.Now(),
		failed: make(chan struct{}), served: make(chan struct{}),
		warmedUp: make(chan struct{}), cooledDown: make(chan struct{}),
	}
	for c := range trafficClients {
		tr.wg.Add(1)
		go tr.client(c)
	}
	t.Cleanup(tr.stop)
	return tr
}

// now is the time since the traffic started, never 0.
func (tr *traffic) now() int64 { return int64(time.Since(tr.start)) + 1 }

func (tr *traffic) mark(at *atomic.Int64) { at.Store(tr.now()) }

// stop ends the load and waits for the clients.
func (tr *traffic) stop() {
	tr.stopMu.Do(func() {
		tr.halt.Store(true)
		tr.wg.Wait()
	})
}

// await waits up to a minute for ch to close; otherwise it stops the load
// and fails the test.
func (tr *traffic) await(ch <-chan struct{}, what string) {
	tr.t.Helper()
	tr.awaitWithin(ch, time.Minute, what)
}

func (tr *traffic) awaitWithin(ch <-chan struct{}, bound time.Duration, what string) {
	tr.t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		tr.stop()
		tr.t.Fatalf("%s (%d logins, %d logouts acknowledged; %d Get errors, %d write errors, %d other failures)",
			what, tr.logins.Load(), tr.logouts.Load(), tr.getErrors.Load(), tr.writeErrors.Load(), tr.otherErrs.Load())
	}
}

func (tr *traffic) violate(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.violations = append(tr.violations, fmt.Sprintf(format, args...))
}

// answer is what one request got.
type answer struct {
	status  int
	body    string
	session string // X-Session
	cookie  *http.Cookie
}

// do sends a request carrying cookie (if any) and notes its outcome for the
// switch's timings: a request counts as served when the store answered it
// without error.
func (tr *traffic) do(method, path string, form url.Values, cookie *http.Cookie) answer {
	sent := tr.now()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, tr.srv.URL+path, body)
	if err != nil {
		panic(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		tr.violate("%s %s: %v", method, path, err)
		return answer{}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, body: strings.TrimSpace(string(b)), session: resp.Header.Get("X-Session")}
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			a.cookie = c // the last one set wins, as in a browser
		}
	}
	if killed := tr.killDone.Load(); killed != 0 && sent > killed {
		if a.status == http.StatusServiceUnavailable {
			if tr.firstFailure.CompareAndSwap(0, tr.now()) {
				tr.failOnce.Do(func() { close(tr.failed) })
			}
		} else if (a.status == http.StatusOK || a.status == http.StatusUnauthorized) && tr.firstSuccess.CompareAndSwap(0, tr.now()) {
			tr.serveOnce.Do(func() { close(tr.served) })
		}
	}
	if a.status == http.StatusServiceUnavailable {
		switch {
		case strings.HasPrefix(a.body, "get:"):
			tr.getErrors.Add(1)
		case strings.HasPrefix(a.body, "save:"), strings.HasPrefix(a.body, "regenerate:"):
			tr.writeErrors.Add(1)
		default:
			tr.otherErrs.Add(1)
		}
	}
	return a
}

// client visits, logs in, reads its accounts and logs some out, until
// stopped.
func (tr *traffic) client(c int) {
	defer tr.wg.Done()
	var mine []*account
	for i := 0; !tr.halt.Load(); i++ {
		var anonymous *http.Cookie
		if a := tr.do(http.MethodPost, "/visit", nil, nil); a.status == http.StatusOK && a.cookie != nil {
			anonymous = a.cookie
		}
		acct := &account{user: fmt.Sprintf("user-%d-%d", c, i), login: fmt.Sprint(i)}
		a := tr.do(http.MethodPost, "/login", url.Values{"user": {acct.user}, "login": {acct.login}}, anonymous)
		if anonymous != nil && a.session == "new" {
			tr.violate("login %s: Get handed out a new session for the acknowledged anonymous one, without an error", acct.user)
		}
		if a.status == http.StatusOK {
			if a.cookie == nil {
				tr.violate("login %s: acknowledged without a cookie", acct.user)
				continue
			}
			acct.cookie, acct.anonymous, acct.acked = a.cookie, anonymous, tr.now()
			mine = append(mine, acct)
			tr.mu.Lock()
			tr.accounts = append(tr.accounts, acct)
			tr.mu.Unlock()
			tr.logins.Add(1)
			if tr.promoteDone.Load() != 0 && tr.loginsAfter.Add(1) == 20 {
				tr.cool.Do(func() { close(tr.cooledDown) })
			}
		}
		// Read the newest account and an older one.
		if len(mine) > 0 {
			tr.read(mine[len(mine)-1])
			tr.read(mine[i%len(mine)])
		}
		// Every third round, log out the oldest account not yet out.
		if i%3 == 2 {
			for _, acct := range mine {
				if acct.state != loggedOut {
					tr.logout(acct)
					break
				}
			}
		}
		if tr.logins.Load() >= 40 && tr.logouts.Load() >= 5 {
			tr.warm.Do(func() { close(tr.warmedUp) })
		}
	}
}

// read checks what GET /me says of acct against what was acknowledged.
func (tr *traffic) read(acct *account) {
	a := tr.do(http.MethodGet, "/me", nil, acct.cookie)
	tr.checkRead(acct, a, "during the load")
}

func (tr *traffic) checkRead(acct *account, a answer, when string) {
	switch acct.state {
	case loggedIn:
		switch a.status {
		case http.StatusOK:
			if want := acct.user + " " + acct.login + " " + cartOf(acct); a.body != want {
				tr.violate("%s: %s loads %q, want %q", when, acct.user, a.body, want)
			}
		case http.StatusUnauthorized:
			tr.violate("%s: Get gave an empty session and no error for %s, logged in and never out", when, acct.user)
		}
	case loggedOut:
		if a.status == http.StatusOK {
			tr.violate("%s: %s was logged out (acknowledged) and loads again: %q", when, acct.user, a.body)
		}
	}
}

// cartOf is the cart the login carried over from the anonymous session,
// as GET /me prints it.
func cartOf(acct *account) string {
	if acct.anonymous != nil {
		return "book"
	}
	return fmt.Sprint(nil)
}

// logout sends a logout for acct; only an acknowledged one counts.
func (tr *traffic) logout(acct *account) {
	a := tr.do(http.MethodPost, "/logout", nil, acct.cookie)
	if acct.state == loggedIn && a.session == "new" {
		tr.violate("logout of %s: Get gave an empty session and no error for a live one", acct.user)
	}
	if a.status != http.StatusOK {
		acct.state = loggingOut
		return
	}
	acct.state = loggedOut
	tr.logouts.Add(1)
	// A logout is final at once.
	tr.checkRead(acct, tr.do(http.MethodGet, "/me", nil, acct.cookie), "right after its logout")
}

// check runs after the load stopped: every acknowledged login loads with
// its values, every acknowledged logout stays done, every regenerated
// anonymous session stays gone, and nothing went wrong on the way.
func (tr *traffic) check() {
	t := tr.t
	t.Helper()
	var before, pending int
	for _, acct := range tr.accounts {
		if acct.state == loggingOut {
			pending++
			continue
		}
		a := tr.do(http.MethodGet, "/me", nil, acct.cookie)
		if a.status == http.StatusServiceUnavailable {
			t.Errorf("after the failover, %s: %s", acct.user, a.body)
			continue
		}
		tr.checkRead(acct, a, "after the failover")
		if acct.anonymous != nil {
			if a := tr.do(http.MethodGet, "/me", nil, acct.anonymous); a.status != http.StatusUnauthorized {
				t.Errorf("after the failover, the anonymous session %s's login regenerated answers %d %q, want 401", acct.user, a.status, a.body)
			}
		}
	}
	for _, acct := range tr.accounts {
		if acct.acked < tr.killedAt.Load() {
			before++
		}
	}
	if before < 40 {
		t.Errorf("%d logins acknowledged before the crash, want 40 or more", before)
	}
	for i, v := range tr.violations {
		if i == 20 {
			t.Errorf("... and %d more", len(tr.violations)-i)
			break
		}
		t.Error(v)
	}
	if tr.getErrors.Load() == 0 && tr.writeErrors.Load() == 0 {
		t.Error("no request failed: the load did not meet the switch")
	}
	ms := func(d int64) string { return time.Duration(d).Round(time.Millisecond).String() }
	t.Logf("acknowledged: %d logins (%d before the crash), %d logouts (%d logouts unacknowledged, not checked); failed: %d Get, %d Save/Regenerate, %d other",
		tr.logins.Load(), before, tr.logouts.Load(), pending, tr.getErrors.Load(), tr.writeErrors.Load(), tr.otherErrs.Load())
	t.Logf("switch: kill took %s; first failure %s after the kill; promotion started %s after the kill and took %s",
		ms(tr.killDone.Load()-tr.killedAt.Load()), ms(tr.firstFailure.Load()-tr.killDone.Load()),
		ms(tr.promotedAt.Load()-tr.killDone.Load()), ms(tr.promoteDone.Load()-tr.promotedAt.Load()))
	t.Logf("switch: first request served %s after the kill, %s after the promotion started (%s after it returned)",
		ms(tr.firstSuccess.Load()-tr.killDone.Load()), ms(tr.firstSuccess.Load()-tr.promotedAt.Load()),
		ms(tr.firstSuccess.Load()-tr.promoteDone.Load()))
}
