package integration_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pgsessions/pgstore"
)

// loginApp is the session code of a small net/http application, mounted by
// the router tests on chi and on http.ServeMux:
//
//	GET  /visit   an anonymous session (a counter), as before a login
//	POST /login   user=NAME: the user, on a fresh session ID (Regenerate)
//	GET  /whoami  the user, as JSON (null when logged out)
//	POST /logout  deletes the session
type loginApp struct{ st *pgstore.Store }

// session returns the request's session, or answers 503 and returns nil
// when the database cannot be read (pgstore's documented error handling).
func (a loginApp) session(w http.ResponseWriter, r *http.Request) map[any]any {
	s, err := a.st.Get(r, "session")
	if err != nil && !errors.Is(err, pgstore.ErrCorrupt) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return nil
	}
	return s.Values
}

func (a loginApp) visit(w http.ResponseWriter, r *http.Request) {
	s, err := a.st.Get(r, "session")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	n, _ := s.Values["visits"].(int)
	s.Values["visits"] = n + 1
	if err := s.Save(r, w); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (a loginApp) login(w http.ResponseWriter, r *http.Request) {
	s, err := a.st.Get(r, "session")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	user := r.PostFormValue("user")
	if user == "" {
		http.Error(w, "no user", http.StatusBadRequest)
		return
	}
	s.Values["user"] = user
	if err := a.st.Regenerate(r, w, s); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (a loginApp) whoami(w http.ResponseWriter, r *http.Request) {
	if v := a.session(w, r); v != nil {
		serveJSON(w, v["user"])
	}
}

func (a loginApp) logout(w http.ResponseWriter, r *http.Request) {
	s, err := a.st.Get(r, "session")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	s.Options.MaxAge = -1
	if err := s.Save(r, w); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// checkLoginFlow drives a loginApp (or an application with the same
// routes) from a browser: an anonymous visit, a login that moves the
// session to a new ID, the user read back, a logout that deletes the row.
// The cookie from before the login, kept by someone who planted it
// (session fixation), must find no user.
func checkLoginFlow(t *testing.T, b *browser, db testDB, cookieName string) {
	t.Helper()
	resp, body := b.get("/visit")
	wantStatus(t, "anonymous visit", resp, body, http.StatusOK)
	planted := b.cookie(cookieName)
	if planted == nil {
		t.Fatal("the anonymous visit set no session cookie")
	}

	resp, body = b.post("/login", url.Values{"user": {"alice"}})
	wantStatus(t, "login", resp, body, http.StatusOK)
	loggedIn := b.cookie(cookieName)
	if loggedIn == nil || loggedIn.Value == planted.Value {
		t.Fatalf("login kept the session cookie from before it (%v); Regenerate must move the session", loggedIn)
	}
	if n := db.rows(t); n != 1 {
		t.Errorf("%d session rows after login, want 1 (the pre-login row moved)", n)
	}
	if got := whoami(t, b); got != `"alice"` {
		t.Errorf("whoami after login = %s, want \"alice\"", got)
	}

	attacker := newBrowser(t, b.srv)
	attacker.client.Jar.SetCookies(attacker.base, []*http.Cookie{{Name: planted.Name, Value: planted.Value, Path: "/", Secure: planted.Secure}})
	if got := whoami(t, attacker); got != "null" {
		t.Errorf("whoami with the pre-login cookie = %s, want null", got)
	}

	resp, body = b.post("/logout", nil)
	wantStatus(t, "logout", resp, body, http.StatusOK)
	if n := db.rows(t); n != 0 {
		t.Errorf("%d session rows after logout, want 0", n)
	}
	if c := b.cookie(cookieName); c != nil {
		t.Errorf("the browser still holds %v after logout", c)
	}
	if got := whoami(t, b); got != "null" {
		t.Errorf("whoami after logout = %s, want null", got)
	}
}

// whoami returns what GET /whoami answers, as JSON without the newline
// some frameworks end it with.
func whoami(t *testing.T, b *browser) string {
	t.Helper()
	resp, body := b.get("/whoami")
	wantStatus(t, "whoami", resp, body, http.StatusOK)
	return strings.TrimSpace(body)
}
