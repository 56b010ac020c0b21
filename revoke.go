package pgstore

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/sessions"
)

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
// What other sessions hold never stops it, nor what the matching ones hold
// under other keys: a \u0000 or half a surrogate pair anywhere in a
// document, which makes PostgreSQL's ->> fail, included. A stored value
// holding one of those never matches, because no text equals it; for the
// same reason key and a string value must not hold NUL (ErrEncode).
//
// It runs one DELETE, reading the key through pgstore_sess_text(sess, key),
// the function New installs beside the table (schema.sql). Without an
// expression index on that call (Config.IndexKeys makes one) it examines
// every row.
//
// The DELETE runs in a REPEATABLE READ transaction, so that a matching
// session that another request regenerates while it runs does not slip
// away under its new ID: the DELETE then starts again, up to 10 times. If
// the connection fails after the server committed the DELETE, the retry
// finds nothing left and the count is lower than what was deleted.
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
	text, err := st.selectBy(ctx, "revoke", key, value)
	if err != nil {
		return 0, err
	}
	query := st.cfg.revokeSQL(key)
	var n int64
	for attempt := 1; ; attempt++ {
		err = st.retry(ctx, func(ctx context.Context, on runner) error {
			var err error
			n, err = deleteSnapshot(ctx, on, query, text, keepSID)
			return err
		})
		if sqlState(err) != "40001" || attempt == revokeAttempts {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: revoke by %q: %w", key, err)
	}
	st.stats.revoked.Add(uint64(n))
	st.log.InfoContext(ctx, "pgstore: revoked sessions", "key", key, "deleted", n, "kept", keepSID != "")
	return n, nil
}

// selectBy checks what Revoke, ListSessions and EndSession select sessions
// by, for op, and returns the text value's stored JSON gives through
// pgstore_sess_text. The function must exist: when New could not find or
// create it, someone may have run schema.sql since.
func (st *Store) selectBy(ctx context.Context, op, key string, value any) (string, error) {
	if st.isClosed() {
		return "", errClosed
	}
	if key == "" || strings.ContainsRune(key, 0) || !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: %s: key %q is empty, holds a NUL or is not valid UTF-8", ErrEncode, op, key)
	}
	text, err := revokeText(value)
	if err != nil {
		return "", fmt.Errorf("%w (%s by %q)", err, op, key) // err says pgstore: already
	}
	if st.sessTextErr != nil {
		ok, err := st.sessTextExists(ctx, st.db)
		if err != nil {
			return "", fmt.Errorf("pgstore: %s by %q: %w", op, key, err)
		}
		if !ok {
			return "", fmt.Errorf("pgstore: %s by %q: %w", op, key, st.sessTextErr)
		}
	}
	return text, nil
}

// revokeSQL deletes the sessions whose value at key is $1, except $2's.
// It reads the key through the store's function, never with sess ->> key,
// which fails for the whole statement when any row holds \u0000 (see
// schema.sql). The key is a literal, not a parameter, so that an expression
// index on the same call, pgstore_sess_text(sess, 'key'), can serve it.
func (s *settings) revokeSQL(key string) string {
	return "DELETE FROM " + s.qualifiedTable() + " WHERE " + s.qualifiedSessText() + "(sess, " + quoteLiteral(key) + ") = $1 AND sid <> $2"
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
func deleteSnapshot(ctx context.Context, on runner, query string, args ...any) (int64, error) {
	tx, err := on.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
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
		if !utf8.ValidString(v.String()) {
			return "", fmt.Errorf("%w: value is not valid UTF-8", ErrEncode)
		}
		return v.String(), nil
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		jv, err := jsonValue(value, 0)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrEncode, err)
		}
		b, err := marshal(jv)
		return string(b), err
	default:
		return "", fmt.Errorf("%w: revoke compares strings, bools and numbers, not %T", ErrEncode, value)
	}
}
