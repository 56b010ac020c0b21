package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

const (
	// sessionName is the cookie's name.
	sessionName = "session"
	// userKey is the session value that holds the logged-in user's name,
	// by which the store lists and ends the user's sessions.
	userKey = "user"
	// maxUserLen is the longest user name /login accepts, in characters.
	maxUserLen = 64
	// healthTimeout bounds the database check of /healthz.
	healthTimeout = 2 * time.Second
)

// app is the web application: an http.Handler over a session store. Create
// it with newApp and Close it when done. It is safe for concurrent use.
type app struct {
	log       *slog.Logger
	storage   *storage
	router    *mux.Router
	closeOnce sync.Once
	closeErr  error
}

// newApp opens the session storage described by cfg (see openStorage) and
// routes the endpoints. ctx bounds the setup only.
func newApp(ctx context.Context, cfg appConfig) (*app, error) {
	s, err := openStorage(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := &app{log: cfg.Logger, storage: s, router: mux.NewRouter()}
	a.router.HandleFunc("/", a.home).Methods(http.MethodGet)
	a.router.HandleFunc("/login", a.login).Methods(http.MethodPost)
	a.router.HandleFunc("/logout", a.logout).Methods(http.MethodPost)
	a.router.HandleFunc("/whoami", a.whoami).Methods(http.MethodGet)
	a.router.HandleFunc("/sessions", a.sessionsPage).Methods(http.MethodGet)
	a.router.HandleFunc("/sessions/end", a.endSession).Methods(http.MethodPost)
	a.router.HandleFunc("/sessions/others", a.endOtherSessions).Methods(http.MethodPost)
	a.router.HandleFunc("/healthz", a.healthz).Methods(http.MethodGet, http.MethodHead)
	return a, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.router.ServeHTTP(w, r)
}

// Close releases the session store (and the database pool and throwaway
// cluster behind it). Call it after the HTTP server has shut down. It is
// safe to call more than once.
func (a *app) Close() error {
	a.closeOnce.Do(func() {
		a.closeErr = a.storage.close()
		if a.closeErr != nil {
			a.log.Error("closing the session store failed", "err", a.closeErr)
			return
		}
		a.log.Info("session store closed")
	})
	return a.closeErr
}

// session returns the request's session, or answers 503 and returns nil
// when the session database cannot be read: the visitor may well be logged
// in, so the request must not go on as if they were not (and must not save
// the empty session it would get). A row that cannot be decoded
// (pgstore.ErrCorrupt) is logged, and the request goes on with the new,
// empty session the store returns. Errors never hold the cookie or the ID.
func (a *app) session(w http.ResponseWriter, r *http.Request) *sessions.Session {
	s, err := a.storage.store.Get(r, sessionName)
	switch {
	case err == nil:
	case errors.Is(err, pgstore.ErrCorrupt):
		a.log.WarnContext(r.Context(), "a session row cannot be read; going on with a new session", "err", err)
	default:
		a.unavailable(w, r, "could not load the session", err)
		return nil
	}
	return s
}

// unavailable logs err and answers 503 with Retry-After: the session
// database cannot be reached or answered with an error.
func (a *app) unavailable(w http.ResponseWriter, r *http.Request, doing string, err error) {
	a.log.ErrorContext(r.Context(), doing, "err", err, "path", r.URL.Path)
	w.Header().Set("Retry-After", "5")
	http.Error(w, "sessions are unavailable; try again shortly", http.StatusServiceUnavailable)
}

// serverError logs err and answers 500 without details.
func (a *app) serverError(w http.ResponseWriter, r *http.Request, doing string, err error) {
	a.log.ErrorContext(r.Context(), doing, "err", err, "path", r.URL.Path)
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

var homePage = newPage("home", `{{define "title"}}pgstore example{{end}}
{{define "body"}}<h1>pgstore example</h1>
{{if .User -}}
<p>Logged in as <strong>{{.User}}</strong>.</p>
{{if .Sessions}}<p><a href="/sessions">Your sessions</a>: where you are signed in, and signing out elsewhere.</p>
{{end -}}
<form method="post" action="/logout"><button>Log out</button></form>
{{- else -}}
<p>Not logged in.</p>
<form method="post" action="/login">
<label>User name <input name="user" maxlength="64" required autofocus></label>
<button>Log in</button>
</form>
{{- end}}
{{if .Visits}}<p>Visits in this session: {{.Visits}}</p>
{{end -}}
<p class="muted">Sessions are kept in {{.Storage}}.</p>
{{end}}`)

// home shows who is logged in and counts their visits. An anonymous visitor
// gets no session: saving one would set a cookie and write a 30-day row for
// every cookie-less request, a bot's or a one-time visitor's. Sessions start
// at login, when there is something to keep.
func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s := a.session(w, r)
	if s == nil {
		return
	}
	user, _ := s.Values[userKey].(string)
	var visits int
	if !s.IsNew {
		visits, _ = s.Values["visits"].(int)
		visits++
		s.Values["visits"] = visits
		// Save sets the cookie, so it comes before anything is written.
		if err := s.Save(r, w); err != nil {
			a.serverError(w, r, "save session", err)
			return
		}
	}

	a.render(w, r, homePage, struct {
		User     string
		Visits   int
		Storage  string
		Sessions bool // the storage can list them
	}{user, visits, a.storage.kind, a.storage.pg != nil})
}

// login starts an authenticated session for the form field user. A real
// app checks a password here.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	user := strings.TrimSpace(r.PostForm.Get("user"))
	if !validUser(user) {
		http.Error(w, "user must be 1 to 64 printable characters", http.StatusBadRequest)
		return
	}

	s := a.session(w, r)
	if s == nil {
		return
	}
	s.Values[userKey] = user
	// Give the now-privileged session a new ID, so that an ID an attacker
	// planted in this browser before login is worthless afterwards (session
	// fixation). pgstore's Regenerate also writes the values: it is the save.
	if err := a.storage.regenerate(r, w, s); err != nil {
		a.serverError(w, r, "save session", err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// validUser accepts 1 to maxUserLen characters of valid UTF-8 with no
// control characters.
func validUser(user string) bool {
	n := utf8.RuneCountInString(user)
	if n == 0 || n > maxUserLen || !utf8.ValidString(user) {
		return false
	}
	return strings.IndexFunc(user, unicode.IsControl) < 0
}

// logout deletes the session: its row goes, and the cookie is expired.
func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	// Even when Get fails, the store deletes the row the request's cookie
	// names (or says it could not), and the cookie is expired either way.
	s, _ := a.storage.store.Get(r, sessionName)
	s.Options.MaxAge = -1
	if err := s.Save(r, w); err != nil {
		a.serverError(w, r, "delete session", err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, whoamiResponse{})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type whoamiResponse struct {
	User *string `json:"user"` // null when nobody is logged in
}

// whoami reports the logged-in user.
func (a *app) whoami(w http.ResponseWriter, r *http.Request) {
	s := a.session(w, r)
	if s == nil {
		return
	}
	var resp whoamiResponse
	if user, ok := s.Values[userKey].(string); ok {
		resp.User = &user
	}
	// Saving an unchanged session keeps it from expiring while it is in
	// use; pgstore writes only when the stored expiry has fallen behind.
	// A visitor without a session gets none.
	if !s.IsNew {
		if err := s.Save(r, w); err != nil {
			a.serverError(w, r, "save session", err)
			return
		}
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// healthz answers 200 when the session database answers, 503 otherwise. The
// development cookie store has no database and is always healthy.
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if db := a.storage.db; db != nil {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			a.log.WarnContext(r.Context(), "health check: the database does not answer", "err", err)
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
