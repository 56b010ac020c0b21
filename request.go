package pgstore

import (
	"context"
	"net/http"

	"github.com/gorilla/sessions"
)

// requestState holds, per request, what was loaded for each session. It
// lives in the request's context, as gorilla's own registry does, and dies
// with the request. Most requests load one session, which needs no map.
type requestState struct {
	first  *sessions.Session
	loaded *loaded
	more   map[*sessions.Session]*loaded // the second session on
}

type stateKey struct{}

// remember records what New loaded for s, replacing *r with a request
// whose context holds the state when it has none yet, as gorilla's
// registry does in Get. Only New does that: Save and Regenerate record
// through note, and never replace the caller's request.
func (st *Store) remember(r *http.Request, s *sessions.Session, l *loaded) {
	if s.IsNew {
		return
	}
	rs, _ := r.Context().Value(stateKey{}).(*requestState)
	if rs == nil {
		*r = *r.WithContext(context.WithValue(r.Context(), stateKey{}, &requestState{first: s, loaded: l}))
		return
	}
	rs.set(s, l)
}

// note records what a write left in s's row, when the request keeps state.
// Without state (no Get through this store in this request), a later Save
// reads the row again.
func note(r *http.Request, s *sessions.Session, l *loaded) {
	if rs, _ := r.Context().Value(stateKey{}).(*requestState); rs != nil {
		rs.set(s, l)
	}
}

func (rs *requestState) set(s *sessions.Session, l *loaded) {
	switch {
	case rs.first == nil || rs.first == s:
		rs.first, rs.loaded = s, l
	default:
		if rs.more == nil {
			rs.more = make(map[*sessions.Session]*loaded, 1)
		}
		rs.more[s] = l
	}
}

func recall(r *http.Request, s *sessions.Session) *loaded {
	rs, _ := r.Context().Value(stateKey{}).(*requestState)
	if rs == nil {
		return nil
	}
	l := rs.more[s]
	if rs.first == s {
		l = rs.loaded
	}
	if l != nil && l.id == s.ID {
		return l
	}
	return nil
}

func forget(r *http.Request, s *sessions.Session) {
	rs, _ := r.Context().Value(stateKey{}).(*requestState)
	switch {
	case rs == nil:
	case rs.first == s:
		rs.loaded = nil // the slot stays s's: each session has one place
	default:
		delete(rs.more, s)
	}
}
