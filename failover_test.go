package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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
// is reported as done. Besides the load, requests held at a gate span the
// crash: most loaded their session before it and write it (Save,
// Regenerate, logout) after it, some load it after it; half of them must
// answer within a second, so some answer while there is no primary.
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
			// No replica reads: a store pointed at the standby refuses to
			// start, since a user who just logged in on the primary could
			// look logged out there.
			standby := pgtest.OpenDSN(t, drv, pair.Standby.DSN())
			if _, err := pgstore.New(standby, pgstore.Config{KeyPairs: [][]byte{hashKey1}, PruneInterval: -1}); !errors.Is(err, pgstore.ErrReadOnly) || !strings.Contains(err.Error(), "standby") {
				t.Fatalf("New on the standby: %v, want ErrReadOnly saying it is a standby", err)
			}
			st := openFailoverStore(t, drv, pair.DSN())
			g := newGate()
			srv := httptest.NewServer(sessionApp(st, g))
			t.Cleanup(srv.Close)
			tr := newTraffic(t, srv, g)

			inFlight := tr.loginInFlight(16)
			tr.await(tr.warmedUp, "the load did not log 40 users in and 5 out")
			tr.sendInFlight(inFlight)
			tr.awaitArrivals(len(inFlight))
			tr.mark(&tr.killedAt)
			if err := pair.Primary.Kill(); err != nil {
				tr.stop()
				t.Fatal(err)
			}
			tr.mark(&tr.killDone)
			g.open() // the in-flight requests go on now, with no primary
			// Promote once the app reports the outage, as an operator or a
			// failover manager would act on it, and once the impatient
			// in-flight requests have answered: without a primary.
			tr.await(tr.failed, "no request failed with the primary down")
			tr.await(tr.impatientDone, "the in-flight requests with a deadline did not answer")
			tr.mark(&tr.promotedAt)
			if err := pair.Standby.Promote(); err != nil {
				tr.stop()
				t.Fatal(err)
			}
			tr.mark(&tr.promoteDone)
			// The store serves again without a restart...
			tr.awaitWithin(tr.served, 30*time.Second, "no request succeeded within 30 s of the promotion")
			// ...and keeps serving: logins on the new primary.
			tr.await(tr.cooledDown, "the load did not log 20 users in after the promotion")
			tr.stop()
			tr.check()
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
		// QueryTimeout stays at its default: it bounds New's setup (a
		// synchronous commit on a busy machine) and how long a request
		// retries before it reports the outage.
		SchemaName: pgtest.Schema(t, pgtest.OpenDSN(t, "postgres", dsn)),
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

// gate holds requests between their Get and their write: each reports its
// arrival, then waits for the gate to open.
type gate struct {
	arrived  chan struct{}
	released chan struct{}
	once     sync.Once
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}, 100), released: make(chan struct{})}
}

func (g *gate) open() { g.once.Do(func() { close(g.released) }) }

// sessionApp is the application under load. It answers 503 with the error
// when the store fails, and reports in the X-Session header whether Get
// loaded the request's session ("loaded") or handed out a new one ("new").
//
//	POST /visit     an anonymous session with a cart
//	POST /login     Get, Regenerate with the user, then Save a second value
//	GET  /me        the session's values, or 401 when it is new
//	POST /logout    Get, then Save with MaxAge -1 (even when Get failed)
//	POST /inflight  Get, wait at the gate, then op: save (a note),
//	                regenerate, or logout; or for op read, wait at the gate,
//	                then GET /me. What follows the gate must end within
//	                deadline, if one is given
func sessionApp(st *pgstore.Store, g *gate) http.Handler {
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
		fmt.Fprintf(w, "%v %v %v %v", s.Values["user"], s.Values["login"], s.Values["cart"], s.Values["note"])
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
	mux.HandleFunc("POST /inflight", func(w http.ResponseWriter, r *http.Request) {
		op := r.FormValue("op")
		// await waits at the gate, then bounds the rest by the deadline.
		await := func() bool {
			g.arrived <- struct{}{}
			select {
			case <-g.released:
			case <-r.Context().Done():
				return false
			}
			if d, err := time.ParseDuration(r.FormValue("deadline")); err == nil {
				ctx, cancel := context.WithTimeout(r.Context(), d)
				context.AfterFunc(r.Context(), cancel) // ends with the request
				r = r.WithContext(ctx)
			}
			return true
		}
		if op == "read" && !await() {
			return
		}
		s, err := st.Get(r, cookieName)
		if err != nil {
			fail(w, "get", err)
			return
		}
		loaded(w, s.IsNew)
		switch {
		case op == "read" && s.IsNew:
			http.Error(w, "anonymous", http.StatusUnauthorized)
			return
		case op == "read":
			fmt.Fprintf(w, "%v %v %v %v", s.Values["user"], s.Values["login"], s.Values["cart"], s.Values["note"])
			return
		case !await():
			return
		}
		switch op {
		case "save":
			s.Values["note"] = "inflight"
			err = st.Save(r, w, s)
		case "regenerate":
			err = st.Regenerate(r, w, s)
		case "logout":
			s.Options.MaxAge = -1
			err = st.Save(r, w, s)
		default:
			http.Error(w, "unknown op "+op, http.StatusBadRequest)
			return
		}
		if err != nil {
			fail(w, op, err)
		}
	})
	return mux
}

// account is a login the app acknowledged, as its user's browser knows it.
type account struct {
	user, login string
	cookie      *http.Cookie
	cart        bool           // the login carried over an anonymous session's cart
	note        string         // what an acknowledged in-flight Save wrote
	noteUnsure  bool           // an in-flight Save failed: its note may be there or not
	gone        []*http.Cookie // cookies whose sessions were regenerated away
	acked       int64          // when the login was acknowledged (traffic.now)
	state       accountState
}

type accountState int

const (
	loggedIn   accountState = iota
	loggingOut              // a logout was sent and not acknowledged: either outcome is right
	loggedOut               // a logout was acknowledged
	unsettled               // a Regenerate failed: the session is under the old ID or gone
)

// want is what GET /me must answer for a in the loggedIn state: the values
// of its acknowledged writes.
func (a *account) want() []string {
	cart := "<nil>"
	if a.cart {
		cart = "book"
	}
	prefix := a.user + " " + a.login + " " + cart + " "
	if a.noteUnsure {
		return []string{prefix + "<nil>", prefix + "inflight"}
	}
	if a.note != "" {
		return []string{prefix + a.note}
	}
	return []string{prefix + "<nil>"}
}

// traffic is the load: clients that visit, log in, read and log out over
// HTTP, each with its own accounts, checking every answer against what the
// app acknowledged before. It notes the first failure and the first success
// of requests sent after the crash, and the events the test waits on.
type traffic struct {
	t      *testing.T
	srv    *httptest.Server
	gate   *gate
	start  time.Time
	halt   atomic.Bool
	wg     sync.WaitGroup
	stopMu sync.Once

	// Instants as time since start; 0 until they happen.
	killedAt, killDone, promotedAt, promoteDone atomic.Int64
	firstFailure, firstSuccess                  atomic.Int64

	failed, served, impatientDone     chan struct{}
	impatient                         atomic.Int64 // in-flight requests with a deadline, not answered yet
	warmedUp, cooledDown              chan struct{}
	failOnce, serveOnce, warm, cool   sync.Once
	logins, logouts, loginsAfter      atomic.Int64
	getErrors, writeErrors, otherErrs atomic.Int64
	inFlightAcked, inFlightFailed     atomic.Int64

	mu         sync.Mutex
	accounts   []*account
	violations []string
}

const trafficClients = 4

func newTraffic(t *testing.T, srv *httptest.Server, g *gate) *traffic {
	tr := &traffic{
		t: t, srv: srv, gate: g, start: time.Now(),
		failed: make(chan struct{}), served: make(chan struct{}), impatientDone: make(chan struct{}),
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

// stop ends the load, lets requests at the gate through, and waits for
// the clients.
func (tr *traffic) stop() {
	tr.stopMu.Do(func() {
		tr.halt.Store(true)
		tr.gate.open()
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
// without error, as failed when the app answered 503.
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
	// The first failure is the first the app reports after the crash; the
	// first success must come from a request sent after it, since one sent
	// before may have been served by the old primary.
	if killed := tr.killDone.Load(); killed != 0 {
		if a.status == http.StatusServiceUnavailable {
			if tr.firstFailure.CompareAndSwap(0, tr.now()) {
				tr.failOnce.Do(func() { close(tr.failed) })
			}
		} else if (a.status == http.StatusOK || a.status == http.StatusUnauthorized) && sent > killed &&
			tr.firstSuccess.CompareAndSwap(0, tr.now()) {
			tr.serveOnce.Do(func() { close(tr.served) })
		}
	}
	if a.status == http.StatusServiceUnavailable {
		if strings.HasPrefix(a.body, "get:") {
			tr.getErrors.Add(1)
		} else {
			tr.writeErrors.Add(1)
		}
	} else if a.status != http.StatusOK && a.status != http.StatusUnauthorized {
		tr.otherErrs.Add(1)
		tr.violate("%s %s: %d %q", method, path, a.status, a.body)
	}
	return a
}

// login logs a user in, from an anonymous session when anonymous is not
// nil, and returns the account, or nil when the login was not
// acknowledged.
func (tr *traffic) login(user, login string, anonymous *http.Cookie) *account {
	a := tr.do(http.MethodPost, "/login", url.Values{"user": {user}, "login": {login}}, anonymous)
	if anonymous != nil && a.session == "new" {
		tr.violate("login %s: Get handed out a new session for the acknowledged anonymous one, without an error", user)
	}
	if a.status != http.StatusOK {
		return nil
	}
	if a.cookie == nil {
		tr.violate("login %s: acknowledged without a cookie", user)
		return nil
	}
	acct := &account{user: user, login: login, cookie: a.cookie, acked: tr.now()}
	if anonymous != nil {
		acct.cart, acct.gone = true, []*http.Cookie{anonymous}
	}
	tr.mu.Lock()
	tr.accounts = append(tr.accounts, acct)
	tr.mu.Unlock()
	tr.logins.Add(1)
	if tr.promoteDone.Load() != 0 && tr.loginsAfter.Add(1) == 20 {
		tr.cool.Do(func() { close(tr.cooledDown) })
	}
	return acct
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
		if acct := tr.login(fmt.Sprintf("user-%d-%d", c, i), fmt.Sprint(i), anonymous); acct != nil {
			mine = append(mine, acct)
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
			want := acct.want()
			if !slices.Contains(want, a.body) {
				tr.violate("%s: %s loads %q, want %q", when, acct.user, a.body, strings.Join(want, `" or "`))
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

// inFlightOps are what the requests that span the crash do after it.
var inFlightOps = []string{"save", "regenerate", "logout", "read"}

// loginInFlight logs in n accounts for requests that will span the crash.
func (tr *traffic) loginInFlight(n int) []*account {
	tr.t.Helper()
	accts := make([]*account, n)
	for i := range accts {
		accts[i] = tr.login(fmt.Sprintf("inflight-%d", i), fmt.Sprint(i), nil)
		if accts[i] == nil {
			tr.stop()
			tr.t.Fatalf("login inflight-%d failed before the crash", i)
		}
	}
	return accts
}

// sendInFlight sends one request for each account, with the ops in turn:
// each loads its session, then waits at the gate before writing it (or, to
// read, waits before loading it). Every other round of ops must end within
// a second of the gate, sooner than the store's retries give up, so that
// some fail while no server takes writes, whatever the store's retries;
// the others may outlast the switch.
func (tr *traffic) sendInFlight(accts []*account) {
	for i, acct := range accts {
		op := inFlightOps[i%len(inFlightOps)]
		form := url.Values{"op": {op}}
		impatient := i/len(inFlightOps)%2 == 0
		if impatient {
			form.Set("deadline", "1s")
			tr.impatient.Add(1)
		}
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			a := tr.do(http.MethodPost, "/inflight", form, acct.cookie)
			if impatient && tr.impatient.Add(-1) == 0 {
				close(tr.impatientDone)
			}
			if a.session == "new" && op != "read" {
				tr.violate("in-flight %s of %s: Get gave an empty session and no error before the crash", op, acct.user)
			}
			ok := a.status == http.StatusOK
			if ok {
				tr.inFlightAcked.Add(1)
			} else {
				tr.inFlightFailed.Add(1)
			}
			switch op {
			case "save":
				if ok {
					acct.note = "inflight"
				} else {
					acct.noteUnsure = true
				}
			case "regenerate":
				if !ok || a.cookie == nil {
					acct.state = unsettled
					return
				}
				acct.gone = append(acct.gone, acct.cookie)
				acct.cookie = a.cookie
			case "logout":
				acct.state = loggingOut
				if ok {
					acct.state = loggedOut
				}
			case "read":
				tr.checkRead(acct, a, "in-flight read across the crash")
			}
		}()
	}
}

// awaitArrivals waits until n requests loaded their session and wait at
// the gate.
func (tr *traffic) awaitArrivals(n int) {
	tr.t.Helper()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		select {
		case <-tr.gate.arrived:
		case <-timer.C:
			tr.stop()
			tr.t.Fatalf("%d of %d in-flight requests loaded their session within a minute", i, n)
		}
	}
}

// check runs after the load stopped: every acknowledged login loads with
// the values of its acknowledged writes, every acknowledged logout stays
// done, every regenerated session stays gone, and nothing went wrong on
// the way.
func (tr *traffic) check() {
	t := tr.t
	t.Helper()
	var before, pending int
	for _, acct := range tr.accounts {
		if acct.acked < tr.killedAt.Load() {
			before++
		}
		if acct.state == loggingOut || acct.state == unsettled {
			pending++
			continue
		}
		a := tr.do(http.MethodGet, "/me", nil, acct.cookie)
		if a.status == http.StatusServiceUnavailable {
			t.Errorf("after the failover, %s: %s", acct.user, a.body)
			continue
		}
		tr.checkRead(acct, a, "after the failover")
		for _, c := range acct.gone {
			if a := tr.do(http.MethodGet, "/me", nil, c); a.status != http.StatusUnauthorized {
				t.Errorf("after the failover, a session %s's login or Regenerate moved away answers %d %q, want 401", acct.user, a.status, a.body)
			}
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
	t.Logf("acknowledged: %d logins (%d before the crash), %d logouts; %d accounts unsettled (a logout or Regenerate failed), not checked",
		tr.logins.Load(), before, tr.logouts.Load(), pending)
	t.Logf("failed: %d Get, %d writes; in-flight requests across the crash: %d answered, %d failed",
		tr.getErrors.Load(), tr.writeErrors.Load(), tr.inFlightAcked.Load(), tr.inFlightFailed.Load())
	t.Logf("switch: kill took %s; first failure %s after the kill; promotion started %s after the kill and took %s",
		ms(tr.killDone.Load()-tr.killedAt.Load()), ms(tr.firstFailure.Load()-tr.killDone.Load()),
		ms(tr.promotedAt.Load()-tr.killDone.Load()), ms(tr.promoteDone.Load()-tr.promotedAt.Load()))
	t.Logf("switch: first request served %s after the kill, %s after the promotion started (%s after it returned)",
		ms(tr.firstSuccess.Load()-tr.killDone.Load()), ms(tr.firstSuccess.Load()-tr.promotedAt.Load()),
		ms(tr.firstSuccess.Load()-tr.promoteDone.Load()))
}
