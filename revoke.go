package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"

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
	if st.isClosed() {
		return errClosed
	}
	if s.Options == nil {
		opts := st.cfg.options
		s.Options = &opts
	}
	if s.Options.MaxAge < 0 {
		return st.destroy(r, w, s)
	}
	if err := checkMaxAge(s.Options.MaxAge); err != nil {
		return err
	}
	if s.ID == "" {
		return st.create(r, w, s, "regenerate", func(ctx context.Context, sid, sess string, exp float64) error {
			_, err := st.stmts.insert.ExecContext(ctx, sid, sess, exp)
			return err
		})
	}
	oldSID, oldID := st.sid(s.ID), s.ID
	tries := 0
	err := st.create(r, w, s, "regenerate", func(ctx context.Context, sid, sess string, exp float64) error {
		tries++
		res, err := st.stmts.regenerate.ExecContext(ctx, oldSID, sid, sess, exp)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 1 {
			return err
		}
		if tries > 1 {
			// An earlier attempt may have committed before its connection
			// died: then the new row is there and the old one gone.
			var done bool
			if err := st.stmts.exists.QueryRowContext(ctx, sid).Scan(&done); err != nil || done {
				return err
			}
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

// Revoke deletes every session whose value at key equals value, for example
// all sessions of a user after a password change (ASVS 7.4.2, 7.4.3):
//
//	n, err := store.Revoke(ctx, "user_id", 42)
//
// value must be a string, bool, integer or float, compared with the text
// PostgreSQL's ->> operator gives for the stored JSON value; store the key
// with the same type you revoke by. It returns how many sessions it deleted.
// Sessions of every writer (Node included) are matched; sessions stored with
// GobCodec are not, because their values are opaque to SQL.
//
// It runs one DELETE that examines every row; see docs/operations.md for the
// expression index that makes it cheap when used often. The DELETE runs in
// a REPEATABLE READ transaction, so that a matching session that another
// request regenerates while it runs does not slip away under its new ID:
// the DELETE then starts again, up to 10 times. If the connection fails
// after the server committed the DELETE, the retry finds nothing left and
// the count is lower than what was deleted.
func (st *Store) Revoke(ctx context.Context, key string, value any) (int64, error) {
	return st.revoke(ctx, key, value, "")
}

// RevokeOthers deletes every session whose value at key equals value, as
// Revoke does, except keep's own: "sign out everywhere else". keep is never
// deleted, and no other matching session survives, not even one that
// another request regenerates meanwhile (see Revoke). It returns how many
// sessions it deleted.
//
// After a password change, call Regenerate on the request's session (a
// fresh ID for the one that proved the password), then RevokeOthers with
// it. keep must not be nil; a keep that was never saved has no row to
// spare, and every matching session is deleted.
func (st *Store) RevokeOthers(ctx context.Context, key string, value any, keep *sessions.Session) (int64, error) {
	if keep == nil {
		return 0, fmt.Errorf("pgstore: revoke others by %q: the session to keep is nil", key)
	}
	keepSID := ""
	if keep.ID != "" {
		keepSID = st.sid(keep.ID)
	}
	return st.revoke(ctx, key, value, keepSID)
}

func (st *Store) revoke(ctx context.Context, key string, value any, keepSID string) (int64, error) {
	if st.isClosed() {
		return 0, errClosed
	}
	if key == "" || strings.ContainsRune(key, 0) {
		return 0, fmt.Errorf("pgstore: revoke: %w: key %q is empty or holds a NUL", ErrEncode, key)
	}
	text, err := revokeText(value)
	if err != nil {
		return 0, fmt.Errorf("pgstore: revoke by %q: %w", key, err)
	}
	// The key is a literal, not a parameter, so that an expression index
	// on (sess ->> 'key') can serve the query.
	query := "DELETE FROM " + st.cfg.qualifiedTable() + " WHERE sess ->> " + quoteLiteral(key) + " = $1 AND sid <> $2"
	var n int64
	for attempt := 1; ; attempt++ {
		err = st.retry(ctx, func(ctx context.Context) error {
			var err error
			n, err = st.deleteSnapshot(ctx, query, text, keepSID)
			return err
		})
		if sqlState(err) != "40001" || attempt == revokeAttempts {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: revoke by %q: %w", key, err)
	}
	st.log.InfoContext(ctx, "pgstore: revoked sessions", "key", key, "deleted", n, "kept", keepSID != "")
	return n, nil
}

// revokeAttempts bounds how often Revoke starts again after a concurrent
// Regenerate moved one of the sessions it was deleting.
const revokeAttempts = 10

// deleteSnapshot runs the DELETE in a REPEATABLE READ transaction. Under
// READ COMMITTED a Regenerate that commits while the DELETE runs would
// move a matching session out of its way: the old row is gone when the
// DELETE reaches it, and the new one is invisible to it. Under REPEATABLE
// READ that case fails with a serialization error (40001), and the caller
// starts again with a snapshot that holds the new row.
func (st *Store) deleteSnapshot(ctx context.Context, query string, args ...any) (int64, error) {
	tx, err := st.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// revokeText is the text ->> yields for value as this store writes it.
func revokeText(value any) (string, error) {
	v := reflect.ValueOf(value)
	switch v.Kind() {
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			return "", fmt.Errorf("%w: value holds a NUL", ErrEncode)
		}
		return v.String(), nil
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		var e jsonEncoder
		if err := e.value(v, 0); err != nil {
			return "", err
		}
		return string(e.buf), nil
	default:
		return "", fmt.Errorf("%w: revoke compares strings, bools and numbers, not %T", ErrEncode, value)
	}
}
