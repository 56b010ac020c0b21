package pgstore

import (
	"math"
	"time"

	"github.com/gorilla/sessions"
)

// A session's lifetime: how long a row lives after a write (ttl), when it
// expires (expiry, capped by the absolute timeout), when an unchanged
// session is touched (touchWindow), and whether a row is alive by the
// database's clock. Times travel to and from the table as epoch seconds.

// epoch turns t into the float seconds bound to to_timestamp.
func epoch(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// epochMicros turns float seconds read from the table back into whole
// microseconds, the precision of the expire column.
func epochMicros(sec float64) int64 {
	return int64(math.Round(sec * 1e6))
}

// alive reports whether a row whose expire is expire (epoch seconds) is
// alive at now, the database's clock: expire >= now, compared in whole
// microseconds, the column's precision, at which both values are exact.
// 'infinity' never expires; '-infinity' always has.
func alive(expire, now float64) bool {
	switch {
	case math.IsInf(expire, 1):
		return true
	case math.IsInf(expire, -1) || math.IsNaN(expire):
		return false
	}
	return epochMicros(expire) >= epochMicros(now)
}

// ttl is how long the row of a session with options o lives after a write.
func (st *Store) ttl(o *sessions.Options) time.Duration {
	if o.MaxAge > 0 {
		return time.Duration(o.MaxAge) * time.Second
	}
	return st.cfg.browserSessionTTL
}

// touchWindow is how far the stored expiry of a session with options o may
// lag before an unchanged Save moves it: Config.TouchInterval, but never
// more than half the session's lifetime, so that a session in use is always
// touched before it expires, whatever its own MaxAge.
func (st *Store) touchWindow(o *sessions.Options) time.Duration {
	return min(st.cfg.touchInterval, st.ttl(o)/2)
}

// expiry returns when a session written now expires, capped by the absolute
// timeout.
func (st *Store) expiry(now time.Time, o *sessions.Options, created int64) time.Time {
	return st.settleExpiry(now.Add(st.ttl(o)), created)
}

// settleExpiry rounds exp as the row format stores it, and caps it by the
// absolute timeout of a session created at created (epoch seconds).
func (st *Store) settleExpiry(exp time.Time, created int64) time.Time {
	exp = st.row.roundExpiry(exp)
	if st.cfg.absoluteTimeout > 0 {
		if limit := time.Unix(created, 0).Add(st.cfg.absoluteTimeout); limit.Before(exp) {
			exp = limit // whole seconds
		}
	}
	return exp
}

// pastAbsoluteTimeout reports whether a session created at created (epoch
// seconds; 0 when unknown) has outlived Config.AbsoluteTimeout at now.
func (st *Store) pastAbsoluteTimeout(created int64, now time.Time) bool {
	return st.cfg.absoluteTimeout > 0 && created > 0 &&
		now.Sub(time.Unix(created, 0)) >= st.cfg.absoluteTimeout
}
