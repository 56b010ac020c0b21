package ginstore

import (
	"errors"
	"fmt"

	ginsessions "github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// errNotUnwrappable is returned for a session that is not gin-contrib's.
var errNotUnwrappable = errors.New("pgstore: ginstore: the session has no Session method (not one sessions.Default or sessions.DefaultMany returned)")

// Unwrap returns the gorilla session behind s, a session that
// sessions.Default or sessions.DefaultMany returned, loading it first if
// the request has not used it yet. Pass it to pgstore's
// Store.RevokeOthers as the session to keep; its ID is s.ID().
//
// gin-contrib/sessions' Session interface leaves the gorilla session out,
// but the type behind it has a Session method that returns it; Unwrap calls
// that method, and returns an error when s has none.
func Unwrap(s ginsessions.Session) (*sessions.Session, error) {
	u, ok := s.(interface{ Session() *sessions.Session })
	if !ok {
		return nil, errNotUnwrappable
	}
	gs := u.Session()
	if gs == nil {
		return nil, errors.New("pgstore: ginstore: the store returned no session")
	}
	return gs, nil
}

// Regenerate moves s to a fresh session ID, as pgstore's Store.Regenerate
// does (see it for the details): call it on login, after setting the
// user's values, or on any change of privilege. The values are saved under
// the new ID and the new cookie is set on c's response, so a later
// s.Save() has nothing left to write. It returns pgstore.ErrSessionNotFound
// when the session's row is gone (logged out or revoked meanwhile).
//
// s must come from a store made by New (or a pgstore.Store used directly);
// like s.Save(), call it before writing the response body, which sends the
// headers and with them the cookie.
func Regenerate(c *gin.Context, s ginsessions.Session) error {
	gs, err := Unwrap(s)
	if err != nil {
		return err
	}
	// gorilla's registry makes the store that loaded a session its
	// Store: this package's adapter, or a pgstore.Store used directly.
	var st *pgstore.Store
	switch owner := gs.Store().(type) {
	case *store:
		st = owner.st
	case *pgstore.Store:
		st = owner
	default:
		return fmt.Errorf("pgstore: ginstore: regenerate: the session belongs to a %T, not to a store ginstore.New made", owner)
	}
	return st.Regenerate(c.Request, c.Writer, gs)
}
