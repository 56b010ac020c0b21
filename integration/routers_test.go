package integration_test

// pgstore behind chi (v5) and behind the standard library's ServeMux,
// with the same application code (loginApp).

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

func TestChi(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	app := loginApp{st}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Get("/visit", app.visit)
	r.Post("/login", app.login)
	r.Get("/whoami", app.whoami)
	r.Post("/logout", app.logout)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	checkLoginFlow(t, newBrowser(t, srv), db, "session")
}

func TestServeMux(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	app := loginApp{st}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /visit", app.visit)
	mux.HandleFunc("POST /login", app.login)
	mux.HandleFunc("GET /whoami", app.whoami)
	mux.HandleFunc("POST /logout", app.logout)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	checkLoginFlow(t, newBrowser(t, srv), db, "session")
}
