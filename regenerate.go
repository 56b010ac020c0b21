package pgstore

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/sessions"
)

// Regenerate moves the session to a fresh ID, as OWASP and ASVS 7.2.4 ask
// on login and on any change of privilege, so that an ID an attacker planted
// before login (session fixation) is worth nothing afterwards. Call it after
// authenticating the user, before or after setting the new values.
//
// The old row is deleted and the new one inserted by a single statement:
// one round trip, one transaction. The new cookie is set on w, and the old
// cookie gives an empty session from then on. The absolute timeout starts
// again, since an authenticated session begins here. Values are kept; clear
// them first if the old ones should not survive.
//
// A session that was loaded but whose row is gone by now (another request
// logged it out, Revoke deleted it, or it expired) is not brought back:
// Regenerate returns ErrSessionNotFound, writes nothing and sets no cookie.
// Of two concurrent Regenerates of one session, one wins and the other gets
// ErrSessionNotFound. A new session (never saved) is created under a fresh
// ID, even with no values (where Save would write nothing).
func (st *Store) Regenerate(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	if err := st.writable(s); err != nil {
		return err
	}
	if s.Options.MaxAge < 0 {
		return st.destroy(r, w, s)
	}
	if s.ID == "" {
		return st.create(r, w, s, "regenerate", st.insertRow)
	}
	oldSID, oldID := st.sid(s.ID), s.ID
	err := st.create(r, w, s, "regenerate", func(ctx context.Context, on runner, sid, sess string, exp float64) error {
		res, err := st.stmts.regenerate.exec(ctx, on, oldSID, sid, sess, exp)
		if err != nil {
			return insertOwn(err)
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			return err
		}
		// An earlier run may have committed before its connection died,
		// whether the store retried or database/sql re-ran the statement
		// on its own: then the new row is there and the old one gone.
		var done bool
		if err := st.stmts.exists.queryRow(ctx, on, sid).Scan(&done); err != nil || done {
			return err
		}
		return ErrSessionNotFound
	})
	if errors.Is(err, ErrSessionNotFound) {
		forget(r, s)
		st.log.DebugContext(r.Context(), "pgstore: regenerate of a session that no longer exists", "session", logID(oldID))
		return ErrSessionNotFound
	}
	return err
}
