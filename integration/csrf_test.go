package integration_test

// gorilla/csrf in front of a gorilla/mux application whose session is in
// pgstore: the two keep their state apart (csrf its token in its own
// cookie, the session its ID in pgstore's), and a refused request leaves
// the session as it was.

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/csrf"
	"github.com/gorilla/mux"
)

var transferForm = template.Must(template.New("form").Parse(
	`<form method="post" action="/transfer">{{.}}<button>Send</button></form>`))

var tokenField = regexp.MustCompile(`name="gorilla.csrf.Token" value="([^"]+)"`)

func TestCSRFWithMux(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	r := mux.NewRouter()
	r.HandleFunc("/form", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		s.Values["user"] = "alice"
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		transferForm.Execute(w, csrf.TemplateField(r))
	}).Methods(http.MethodGet)
	r.HandleFunc("/transfer", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if s.Values["user"] != "alice" {
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		n, _ := s.Values["transfers"].(int)
		s.Values["transfers"] = n + 1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n+1)
	}).Methods(http.MethodPost)
	r.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		serveJSON(w, map[string]any{"user": s.Values["user"], "transfers": s.Values["transfers"]})
	}).Methods(http.MethodGet)
	protect := csrf.Protect(randomKey(t), csrf.Path("/")) // Secure by default: HTTPS
	srv := httptest.NewTLSServer(protect(r))
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)

	resp, body := b.get("/form")
	wantStatus(t, "GET /form", resp, body, http.StatusOK)
	m := tokenField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the form carries no CSRF token:\n%s", body)
	}
	token := m[1]
	if b.cookie("session") == nil || b.cookie("_gorilla_csrf") == nil {
		t.Fatalf("after GET /form the browser holds %v; want the session and the CSRF cookie", b.client.Jar.Cookies(b.base))
	}

	resp, body = b.post("/transfer", url.Values{"gorilla.csrf.Token": {token}})
	wantStatus(t, "POST with the token", resp, body, http.StatusOK)
	if body != "1" {
		t.Errorf("POST with the token answered %q, want 1 (the first transfer)", body)
	}

	resp, body = b.post("/transfer", nil)
	wantStatus(t, "POST without a token", resp, body, http.StatusForbidden)
	resp, body = b.post("/transfer", url.Values{"gorilla.csrf.Token": {strings.Repeat("A", len(token))}})
	wantStatus(t, "POST with a forged token", resp, body, http.StatusForbidden)

	// The session survived the refused requests, unchanged.
	resp, body = b.get("/whoami")
	wantStatus(t, "whoami", resp, body, http.StatusOK)
	if body != `{"transfers":1,"user":"alice"}` {
		t.Errorf("session after the refused POSTs = %s, want alice with 1 transfer", body)
	}
	if n := db.rows(t); n != 1 {
		t.Errorf("%d session rows, want 1", n)
	}

	// The token still works after the refusals.
	resp, body = b.post("/transfer", url.Values{"gorilla.csrf.Token": {token}})
	wantStatus(t, "POST with the token again", resp, body, http.StatusOK)
	if body != "2" {
		t.Errorf("second POST with the token answered %q, want 2", body)
	}
}
