package pgstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"
)

// SessionInfo describes one live session, for a "where you're signed in"
// page. It never carries the session's ID.
type SessionInfo struct {
	// Handle names the session for EndSession. It is derived from the ID
	// with the store's first key, so it cannot be turned into an ID or a
	// cookie, and is the same on every instance that shares that key.
	Handle string
	// Created is when the session was created or last regenerated (at
	// login); zero for a session another program (Node) created, until
	// this store first writes it.
	Created time.Time
	// LastActive is the session's last activity, exact to within
	// Config.TouchInterval: the store records it when it moves the
	// session's expiry (or would, under AbsoluteTimeout's cap), not on
	// every request.
	LastActive time.Time
	// Expires is when the session ends unless it is used again.
	Expires time.Time
	// Current reports whether this is the session passed to ListSessions
	// as the request's own.
	Current bool
	// UserAgent and IP are the client's, as they were when the session was
	// created or last regenerated; empty unless Config.RecordClient was set
	// then.
	UserAgent, IP string
}

// maxUserAgent bounds the user agent kept in a row, in bytes.
const maxUserAgent = 512

// clientInfo returns the user agent and IP to record for r, when the
// store records them.
func (st *Store) clientInfo(r *http.Request) (userAgent, ip string) {
	if !st.cfg.recordClient || r == nil {
		return "", ""
	}
	if st.cfg.clientIP != nil {
		ip = st.cfg.clientIP(r)
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	} else {
		ip = r.RemoteAddr
	}
	return clip(r.UserAgent(), maxUserAgent), clip(ip, maxIP)
}

// maxIP bounds the client address kept in a row, in bytes: an address
// with a zone, not a whole X-Forwarded-For list a hook passed on.
const maxIP = 64

// clip is s without NUL, its invalid UTF-8 replaced, cut to at most n
// bytes at a character's boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// handle is the opaque name of the session whose sid column holds sid,
// under the store's first key.
func (st *Store) handle(sid string) string {
	return handleWith(st.handleKeys[0], sid)
}

func handleWith(key []byte, sid string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// handleMatches reports whether handle names sid under any of the store's
// keys, retired ones included, so that a handle listed by an instance that
// has not yet rotated its keys still ends the session on one that has.
func (st *Store) handleMatches(sid, handle string) bool {
	for _, key := range st.handleKeys {
		if hmac.Equal([]byte(handleWith(key, sid)), []byte(handle)) {
			return true
		}
	}
	return false
}

// handleKeyFor derives the key of session handles from the store's first
// signing key or secret, so that instances sharing those keys give the
// same handles, and no handle reveals anything about a key.
func handleKeyFor(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("pgstore session handle"))
	return mac.Sum(nil)
}

// ListSessions returns the live sessions whose value at key equals value
// (selected as Revoke selects them: Node's sessions too; not GobCodec's),
// the most recently active first. current, when not nil, is the request's
// own session, which is marked Current.
//
// With an expression index on key (Config.IndexKeys), it reads only the
// user's rows. A row it cannot decode is listed with what the table says
// (its expiry) and nothing else.
func (st *Store) ListSessions(ctx context.Context, key string, value any, current *sessions.Session) ([]SessionInfo, error) {
	text, err := st.selectBy(ctx, "list sessions", key, value)
	if err != nil {
		return nil, err
	}
	rows, err := st.userRows(ctx, "list sessions", key, text)
	if err != nil {
		return nil, err
	}
	currentSID := ""
	if current != nil && current.ID != "" {
		currentSID = st.sid(current.ID)
	}
	infos := make([]SessionInfo, 0, len(rows))
	for _, row := range rows {
		info := SessionInfo{Handle: st.handle(row.sid), Current: row.sid == currentSID, Expires: expireTime(row.expire)}
		var m meta
		if err := st.decode(row.raw, make(map[any]any), &m); err == nil {
			if m.created > 0 {
				info.Created = time.Unix(m.created, 0)
			}
			info.UserAgent, info.IP = m.userAgent, m.ip
			info.LastActive = st.lastActive(m, row.expire)
		}
		infos = append(infos, info)
	}
	sort.SliceStable(infos, func(i, j int) bool { return infos[i].LastActive.After(infos[j].LastActive) })
	return infos, nil
}

// lastActive is the later of the recorded activity and the one the expiry
// implies (expire minus the lifetime: how another writer, Node, leaves
// it).
func (st *Store) lastActive(m meta, expire float64) time.Time {
	active := m.active
	// Only the store writes native rows, and it records every touch; in
	// Express mode Node touches rows without recording it.
	if !math.IsInf(expire, 0) && (st.cfg.express || active == 0) {
		lifetime := int64(st.options().MaxAge)
		if m.hasMaxAge {
			lifetime = int64(m.maxAge)
		}
		if lifetime <= 0 {
			lifetime = int64(st.cfg.browserSessionTTL / time.Second)
		}
		// Never later than now: the lifetime may have been shortened
		// since the row was written.
		active = max(active, min(int64(expire)-lifetime, st.dbNow().Unix()))
	}
	if active <= 0 {
		return time.Time{}
	}
	return time.Unix(active, 0)
}

// expireTime is a stored expire (epoch seconds, +Inf for 'infinity') as a
// time; the zero time for 'infinity'.
func expireTime(expire float64) time.Time {
	if math.IsInf(expire, 0) {
		return time.Time{}
	}
	return time.UnixMicro(epochMicros(expire))
}

// EndSession ends the session named by handle (from ListSessions), but only
// if its value at key equals value: a handle of another user's session
// ends nothing. It reports whether a session ended. The session's cookie
// gives an empty session from then on, as after a logout.
func (st *Store) EndSession(ctx context.Context, key string, value any, handle string) (bool, error) {
	text, err := st.selectBy(ctx, "end session", key, value)
	if err != nil {
		return false, err
	}
	rows, err := st.userRows(ctx, "end session", key, text)
	if err != nil {
		return false, err
	}
	for _, row := range rows {
		if !st.handleMatches(row.sid, handle) {
			continue
		}
		// Deleted only while it still belongs to the user.
		query := "DELETE FROM " + st.cfg.qualifiedTable() + " WHERE sid = $1 AND " + st.cfg.qualifiedSessText() +
			"(sess, " + quoteLiteral(key) + ") = $2"
		var n int64
		err := st.retry(ctx, func(ctx context.Context, on runner) error {
			res, err := on.ExecContext(ctx, query, row.sid, text)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("pgstore: end session: %w", err)
		}
		if n > 0 {
			st.stats.revoked.Add(uint64(n))
			st.log.InfoContext(ctx, "pgstore: ended a session", "key", key, "session", logID(row.sid))
		}
		return n > 0, nil
	}
	return false, nil
}

// userRow is one live row of a user's.
type userRow struct {
	sid    string
	raw    []byte
	expire float64
}

// userRows reads the live rows whose value at key is text (selectBy).
func (st *Store) userRows(ctx context.Context, op, key, text string) ([]userRow, error) {
	var out []userRow
	err := st.retry(ctx, func(ctx context.Context, on runner) error {
		out = out[:0]
		rows, err := on.QueryContext(ctx, st.cfg.userRowsSQL(key), text)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r userRow
			if err := rows.Scan(&r.sid, &r.raw, &r.expire); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s by %q: %w", op, key, err)
	}
	return out, nil
}

// userRowsSQL selects the live rows whose value at key is $1, through the
// same expression as Revoke, which the index on key serves.
func (s *settings) userRowsSQL(key string) string {
	tz := quoteLiteral(s.timeZone)
	return "SELECT sid, sess, date_part('epoch', expire AT TIME ZONE " + tz + ") FROM " + s.qualifiedTable() +
		" WHERE " + s.qualifiedSessText() + "(sess, " + quoteLiteral(key) + ") = $1 AND expire >= (" + s.dbNow + " AT TIME ZONE " + tz + ")"
}
