package pgstore

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"time"

	"github.com/gorilla/sessions"
)

// Save writes the session and sets its cookie, doing as little as it can:
//
//   - Options.MaxAge < 0 deletes the row and sends an expired cookie.
//   - A new session with no values writes nothing and sets no cookie.
//   - A new session with values is inserted under a fresh ID, and the
//     cookie is set.
//   - A loaded session whose encoded values are unchanged is not written,
//     unless its stored expiry lags by its touch window or more: the
//     smaller of Config.TouchInterval and half the session's lifetime. Then
//     the expiry moves and a persistent cookie is sent again (a
//     browser-session cookie only when it must be re-signed with a newer
//     key).
//   - A session whose MaxAge changed since it was loaded is written, and
//     its cookie sent again with the new lifetime.
//   - A loaded, changed session is updated in one statement. If its row is
//     gone (logged out, revoked or expired meanwhile), Save returns
//     ErrSessionNotFound and writes nothing.
//
// Values that cannot be encoded, or a session larger than Config.MaxLength,
// make Save return an error (wrapping ErrEncode or ErrTooLarge) before
// anything is written.
func (st *Store) Save(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	if err := st.writable(s); err != nil {
		return err
	}
	switch {
	case s.Options.MaxAge < 0:
		return st.destroy(r, w, s)
	case s.IsNew || s.ID == "":
		if len(s.Values) == 0 {
			return nil
		}
		return st.create(r, w, s, "insert", st.insertRow)
	}
	l, err := st.loadedFor(r, s)
	if err != nil {
		return err
	}
	return st.update(r, w, s, l)
}

// loadedFor returns what this request loaded for s, reading the row again
// for a session saved without the Get that loaded it (another request
// value, or a session built by hand).
func (st *Store) loadedFor(r *http.Request, s *sessions.Session) (*loaded, error) {
	if l := recall(r, s); l != nil {
		return l, nil
	}
	l, err := st.load(r.Context(), s.ID)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, ErrSessionNotFound
	}
	if err := st.decode(l.raw, make(map[any]any), &l.meta); err != nil {
		return nil, err
	}
	if value, found := st.format.find(r, s.Name()); found {
		_, current, ok := st.format.decode(s.Name(), value)
		l.oldKey = ok && !current
	}
	note(r, s, l)
	return l, nil
}

// writable readies s for Save or Regenerate: the store must be open, s
// gets the store's cookie options if it has none, and its MaxAge must be
// one the store can honour.
func (st *Store) writable(s *sessions.Session) error {
	if st.isClosed() {
		return errClosed
	}
	if s.Options == nil {
		opts := st.options()
		s.Options = &opts
	}
	return checkMaxAge(s.Options.MaxAge)
}

// checkName refuses, before anything is written, a session whose name
// cannot be a cookie name: net/http would drop the cookie without a word,
// leaving a row nobody can reach.
func checkName(s *sessions.Session, op string) error {
	if err := (&http.Cookie{Name: s.Name(), Value: "x"}).Valid(); err != nil {
		return fmt.Errorf("pgstore: %s session: session name %q cannot be a cookie name: %w", op, s.Name(), err)
	}
	return nil
}

// insertRow is create's statement for a new session.
func (st *Store) insertRow(ctx context.Context, on runner, sid, sess string, exp float64) error {
	_, err := st.stmts.insert.exec(ctx, on, sid, sess, exp)
	return insertOwn(err)
}

// create stores s as a new session under a fresh ID: write runs the
// statement with the new sid, the encoded sess and its expiry. The session
// clock (created) starts now. On success s carries the new ID and its
// cookie is set.
func (st *Store) create(r *http.Request, w http.ResponseWriter, s *sessions.Session, op string,
	write func(ctx context.Context, on runner, sid, sess string, exp float64) error) error {
	if err := checkName(s, op); err != nil {
		return err
	}
	now := st.dbNow()
	m := meta{created: now.Unix(), active: now.Unix()}
	m.userAgent, m.ip = st.clientInfo(r)
	var old []byte
	if l := recall(r, s); l != nil {
		// Regenerate moves a loaded session: its values keep their text,
		// and Node's cookie fields stay.
		old, m.cookie = l.raw, l.meta.cookie
	}
	st.row.setMaxAge(&m, s.Options, st.options().MaxAge)
	exp := st.expiry(now, s.Options, m.created)
	sess, err := st.encode(s, m, exp, old)
	if err != nil {
		return err
	}
	id, err := newID(st.rand, st.format.idBytes())
	if err != nil {
		return err
	}
	cookie, err := st.format.encode(s.Name(), id)
	if err != nil {
		return err
	}
	err = st.retry(r.Context(), func(ctx context.Context, on runner) error {
		return write(ctx, on, st.sid(id), string(sess), epoch(exp))
	})
	if err != nil {
		return fmt.Errorf("pgstore: %s session: %w", op, err)
	}
	st.stats.inserts.Add(1)
	forget(r, s)
	s.ID = id
	s.IsNew = false
	st.setCookie(r, w, s, cookie, now, exp, m.cookie.priority())
	note(r, s, &loaded{id: id, raw: sess, expire: epoch(exp), meta: m})
	return nil
}

func (st *Store) update(r *http.Request, w http.ResponseWriter, s *sessions.Session, l *loaded) error {
	now := st.dbNow()
	m := l.meta
	if m.created == 0 {
		m.created = now.Unix() // a row from another writer: the clock starts now
	}
	st.row.setMaxAge(&m, s.Options, st.options().MaxAge)
	exp := st.expiry(now, s.Options, m.created)
	// Touch when the stored expiry lags by the touch window or more, or
	// when the session's lifetime changed (remember me switched on or
	// off). A row that expires at 'infinity' was made to last: only a
	// change of lifetime moves it.
	lifetimeChanged := m.maxAge != l.meta.maxAge || m.hasMaxAge != l.meta.hasMaxAge
	window := st.touchWindow(s.Options).Seconds()
	touch := epoch(exp)-l.expire >= window || lifetimeChanged
	// An expiry capped by AbsoluteTimeout stops moving; the recorded
	// activity still moves, at the same pace. ('infinity' rows move only
	// with their lifetime.)
	touch = touch || !math.IsInf(l.expire, 0) && m.active > 0 && float64(now.Unix()-m.active) >= window
	if touch {
		m.active = now.Unix()
	}
	cookieExpiry := l.meta.cookie.expires
	if cookieExpiry.IsZero() && !math.IsInf(l.expire, 0) {
		cookieExpiry = time.UnixMicro(epochMicros(l.expire))
	}
	if touch || cookieExpiry.IsZero() {
		cookieExpiry = exp
	}
	sess, unchanged, err := st.encodeAgainst(s, m, cookieExpiry, l.raw)
	if err != nil {
		return err
	}
	// Nothing to write when the values are as loaded and the store's own
	// data too, however the row is laid out: a row Node wrote keeps its
	// layout, and an unchanged Save never writes back a stale copy over a
	// concurrent change of the other side's.
	sameMeta := m.created == l.meta.created && m.maxAge == l.meta.maxAge && m.hasMaxAge == l.meta.hasMaxAge
	if !touch && (bytes.Equal(sess, l.raw) || unchanged && sameMeta || st.sameValues(l.raw, s.Values)) {
		st.stats.skippedWrites.Add(1)
		return nil
	}
	if err := checkName(s, "save"); err != nil {
		return err
	}
	var res sql.Result
	err = st.retry(r.Context(), func(ctx context.Context, on runner) error {
		var err error
		if touch {
			res, err = st.stmts.update.exec(ctx, on, st.sid(s.ID), string(sess), epoch(exp))
		} else {
			res, err = st.stmts.updateValues.exec(ctx, on, st.sid(s.ID), string(sess))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: update session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("pgstore: update session: %w", err)
	} else if n == 0 {
		forget(r, s)
		st.log.DebugContext(r.Context(), "pgstore: save of a session that no longer exists", "session", logID(s.ID))
		return ErrSessionNotFound
	}
	st.stats.updates.Add(1)
	l.raw, l.meta = sess, m
	if touch {
		l.expire = epoch(exp)
		l.meta.cookie.expires = exp
	}
	// The cookie goes out again when its expiry moved, or when the
	// session's lifetime changed (a persistent cookie becoming a
	// browser-session one must replace the one the browser keeps). A
	// browser-session cookie has no expiry; otherwise it is re-sent only
	// to re-sign it when the request's cookie was signed with an older
	// key, so that retired keys can be dropped while such sessions are in
	// use.
	if touch && (s.Options.MaxAge > 0 || lifetimeChanged || l.oldKey) {
		cookie, err := st.format.encode(s.Name(), s.ID)
		if err != nil {
			return err
		}
		st.setCookie(r, w, s, cookie, now, exp, m.cookie.priority())
		l.oldKey = false
	}
	return nil
}

// sameValues reports whether raw holds values equal to values. Only codecs
// whose output is not byte-stable need it: gob writes maps in random order,
// so for GobCodec equal values can encode differently. JSONCodec's output is
// deterministic, and the byte comparison alone decides.
func (st *Store) sameValues(raw []byte, values map[any]any) bool {
	if st.cfg.byteStable {
		return false
	}
	old := make(map[any]any, len(values))
	if err := st.cfg.codec.Decode(raw, old); err != nil {
		return false
	}
	delete(old, metaKey)
	return reflect.DeepEqual(old, values)
}

// destroy deletes the session's row and expires its cookie. The cookie is
// expired even when the delete fails, and the error is returned, so that a
// logout is never reported done while the session lives on.
func (st *Store) destroy(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	http.SetCookie(w, sessions.NewCookie(s.Name(), "", s.Options))
	forget(r, s)
	id := s.ID
	if id == "" {
		// Get may have failed (the database was down) and handed out a new
		// session; the request's cookie still names the session to end.
		if value, found := st.format.find(r, s.Name()); found {
			id, _, _ = st.format.decode(s.Name(), value)
		}
		if id == "" {
			return nil
		}
	}
	s.ID = ""
	err := st.retry(r.Context(), func(ctx context.Context, on runner) error {
		_, err := st.stmts.delete.exec(ctx, on, st.sid(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete session: %w", err)
	}
	st.stats.deletes.Add(1)
	return nil
}
