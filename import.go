package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gorilla/sessions"
)

// Import stores a session that was made elsewhere (another session store,
// a backup) under its existing ID, so that the cookies that carry that ID
// keep working: values become the session's values, created starts its
// absolute timeout (the zero time means now) and expires is when the row
// expires, capped by Config.AbsoluteTimeout and kept to the millisecond, as
// Save keeps it. The row is written exactly as
// Save would write it, in the store's row format (native or Express) with
// its Codec and, under Config.HashIDs, the ID's hash as sid.
//
// It reports whether it inserted the row. A row that already holds the ID,
// live or expired, is left as it is and Import returns false: importing
// twice changes nothing, and a session in use is never overwritten.
//
// An ID that is not 1 to 256 letters, digits, '-' or '_', or a session
// that has already expired, is refused with an error; so are values the
// codec cannot encode (ErrEncode) and a session longer than
// Config.MaxLength (ErrTooLarge), as Save refuses them. The session is
// stored with the store's default cookie options (Config.Options).
//
// cmd/pgstore's migrate command uses it to copy sessions from
// antonlindstrom/pgstore: see docs/migration.md.
func (st *Store) Import(ctx context.Context, id string, values map[any]any, created, expires time.Time) (bool, error) {
	if st.isClosed() {
		return false, errClosed
	}
	if id == "" || len(id) > 256 || !isIDText([]byte(id)) {
		return false, fmt.Errorf("pgstore: import session: the ID is not 1 to 256 letters, digits, '-' or '_'")
	}
	now := st.dbNow()
	if created.IsZero() {
		created = now
	}
	expires = st.settleExpiry(expires, created.Unix()) // as Save would write it
	if !expires.After(now) {
		return false, fmt.Errorf("pgstore: import session %s: it expired at %s", logID(id), expires.UTC().Format(time.RFC3339))
	}
	s := sessions.NewSession(st, "")
	*s.Options = st.options()
	s.Values = values
	sess, err := st.encode(s, meta{created: created.Unix()}, expires, nil)
	if err != nil {
		return false, err
	}
	// Not prepared in New: Import is for one-off jobs, not requests.
	query := "INSERT INTO " + st.cfg.qualifiedTable() + " (sid, sess, expire) VALUES ($1, $2, to_timestamp($3) AT TIME ZONE " +
		quoteLiteral(st.cfg.timeZone) + ") ON CONFLICT (sid) DO NOTHING"
	var inserted int64
	err = st.retry(ctx, func(ctx context.Context, on runner) error {
		res, err := on.ExecContext(ctx, query, st.sid(id), string(sess), epoch(expires))
		if err == nil {
			inserted, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: import session %s: %w", logID(id), err)
	}
	return inserted == 1, nil
}
