package ginstore

import (
	"net/http"

	ginsessions "github.com/gin-contrib/sessions"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// store adapts a *pgstore.Store to gin-contrib/sessions' Store.
//
// Get is its own rather than the pgstore.Store's, which asks gorilla's
// per-request registry to load through the pgstore.Store itself: an
// adapter that changed only New would never be called. Through this Get
// the registry calls this New, and makes this adapter the Store of the
// sessions it hands out, so that their Save comes back here too.
type store struct {
	st *pgstore.Store
}

// New returns a gin-contrib/sessions Store that keeps sessions in st. It is
// safe for concurrent use, as st is, except for its Options method, which
// must be called before the store serves requests.
func New(st *pgstore.Store) ginsessions.Store {
	return &store{st: st}
}

// Get returns the session called name for this request, loading it once
// per request through gorilla's registry.
func (a *store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(a, name)
}

// New loads the session called name, as pgstore.Store.New does.
func (a *store) New(r *http.Request, name string) (*sessions.Session, error) {
	return a.st.New(r, name)
}

// Save saves s, as pgstore.Store.Save does.
func (a *store) Save(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	return a.st.Save(r, w, s)
}

// Options replaces the cookie attributes and lifetime of the sessions the
// store loads from then on: it sets the pgstore.Store's Options field, so
// it changes them for every user of that store. Each zero field is off
// (see the package doc). Call it before the store serves requests.
func (a *store) Options(o ginsessions.Options) {
	a.st.Options = o.ToGorillaOptions()
}
