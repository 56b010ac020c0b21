package pgstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/sessions"
)

// The sess column is a JSON object: the codec's members, and the store's
// own, which a rowFormat writes and reads:
//
//	native:  {"_pgstore":{"created":1764230400,"maxAge":7776000}, values...}
//	Express: {"cookie":{...express-session's cookie...},"_pgstore":{"created":1764230400}, values...}
//
// created (epoch seconds) drives the absolute timeout. It lives inside sess
// so that it survives rewrites by either Go or Node: express-session keeps
// unknown top-level members of a session as they are.

// Names of the sess members the store writes itself.
const (
	metaKey   = "_pgstore"
	cookieKey = "cookie"
)

// meta is what the store keeps in sess besides the values.
type meta struct {
	created   int64
	maxAge    int
	hasMaxAge bool
	cookie    expressCookie
}

// rowFormat is the layout of the store's own members in sess: native, or
// express-session's. New chooses it once, with the cookie format.
type rowFormat interface {
	// reserved lists the session keys the format keeps for itself.
	reserved() []string
	// setMaxAge records in m the lifetime of a session with options o.
	setMaxAge(m *meta, o *sessions.Options)
	// appendMembers appends the store's members to buf, each followed by
	// a comma. cookieExpires is the cookie's expiry, kept in Express mode.
	appendMembers(buf []byte, m meta, o *sessions.Options, cookieExpires time.Time) []byte
	// takeMembers fills m from the store's members in the decoded values
	// and removes them.
	takeMembers(values map[any]any, m *meta) error
	// roundExpiry rounds a session's expiry to what the format stores.
	roundExpiry(exp time.Time) time.Time
	// keepsText reports whether values the application did not change
	// are written back with the text they were read with: rows another
	// program (Node) writes may hold text the codec would write otherwise.
	keepsText() bool
}

// nativeRow keeps the session's lifetime in "_pgstore" only when it
// differs from the store's default ("remember me"), so that sessions
// follow a changed default.
type nativeRow struct{ defaultMaxAge int }

func (nativeRow) reserved() []string { return []string{metaKey} }

func (f nativeRow) setMaxAge(m *meta, o *sessions.Options) {
	m.maxAge, m.hasMaxAge = 0, false
	if o.MaxAge != f.defaultMaxAge {
		m.maxAge, m.hasMaxAge = o.MaxAge, true
	}
}

func (nativeRow) appendMembers(buf []byte, m meta, _ *sessions.Options, _ time.Time) []byte {
	return appendMeta(buf, m, m.hasMaxAge)
}

func (nativeRow) takeMembers(values map[any]any, m *meta) error {
	takeMeta(values, m)
	return nil
}

// roundExpiry keeps milliseconds, the precision of the cookie's Expires.
func (nativeRow) roundExpiry(exp time.Time) time.Time { return exp.Truncate(time.Millisecond) }

// keepsText is false: only the store writes native rows, so every value it
// reads encodes to the text it was read with (a row written by hand with
// other text is rewritten in the codec's form, equal in value).
func (nativeRow) keepsText() bool { return false }

// expressRow keeps express-session's "cookie" member, whose originalMaxAge
// carries the session's lifetime for both sides.
type expressRow struct{}

func (expressRow) reserved() []string { return []string{metaKey, cookieKey} }

func (expressRow) setMaxAge(m *meta, o *sessions.Options) {
	m.maxAge, m.hasMaxAge = max(o.MaxAge, 0), true
}

func (expressRow) appendMembers(buf []byte, m meta, o *sessions.Options, cookieExpires time.Time) []byte {
	buf = appendExpressCookie(buf, o, cookieExpires, m.cookie)
	return appendMeta(append(buf, ','), m, false)
}

func (expressRow) takeMembers(values map[any]any, m *meta) error {
	takeMeta(values, m)
	c, err := parseExpressCookie(values[cookieKey])
	delete(values, cookieKey)
	if err != nil {
		return err
	}
	m.cookie = c
	m.maxAge, m.hasMaxAge = c.maxAgeSeconds(), true
	return nil
}

// roundExpiry rounds up to a whole second: connect-pg-simple judges a row
// alive while expire >= now rounded up to a whole second, so an expiry with
// a fraction would end the session on Node up to a second before Go.
func (expressRow) roundExpiry(exp time.Time) time.Time {
	if whole := exp.Truncate(time.Second); whole.Before(exp) {
		return whole.Add(time.Second)
	}
	return exp
}

// keepsText is true: Node writes these rows, with text (lone surrogates,
// -0, 1e+308) Go would write otherwise or not at all.
func (expressRow) keepsText() bool { return true }

// appendMeta appends the "_pgstore" member and a comma.
func appendMeta(buf []byte, m meta, withMaxAge bool) []byte {
	buf = append(buf, `"`+metaKey+`":{"created":`...)
	buf = strconv.AppendInt(buf, m.created, 10)
	if withMaxAge {
		buf = append(buf, `,"maxAge":`...)
		buf = strconv.AppendInt(buf, int64(m.maxAge), 10)
	}
	return append(buf, "},"...)
}

// takeMeta sets m's created and maxAge from the decoded "_pgstore" member
// and removes it: created when it is a positive integer, maxAge when it is
// an integer; anything else is ignored.
func takeMeta(values map[any]any, m *meta) {
	mm, _ := values[metaKey].(map[string]any)
	delete(values, metaKey)
	if c, ok := mm["created"].(int); ok && c > 0 {
		m.created = int64(c)
	}
	if ma, ok := mm["maxAge"].(int); ok {
		m.maxAge, m.hasMaxAge = ma, true
	}
}

// encode builds the sess column for s: the store's members, then the
// codec's. old is the row's sess as loaded, nil for a new row: every value
// the application did not change keeps its JSON text from there, and a
// session already larger than Config.MaxLength may be written back as long
// as it does not grow.
func (st *Store) encode(s *sessions.Session, m meta, cookieExpires time.Time, old []byte) ([]byte, error) {
	for _, k := range st.row.reserved() {
		if _, ok := s.Values[k]; ok {
			return nil, fmt.Errorf("%w: session key %q: the name is reserved for the store's own data", ErrEncode, k)
		}
	}
	values, err := st.cfg.codec.Encode(s.Values)
	if err != nil {
		return nil, err
	}
	values = bytes.TrimSpace(values)
	if len(values) < 2 || values[0] != '{' || values[len(values)-1] != '}' {
		return nil, fmt.Errorf("%w: the codec did not produce a JSON object", ErrEncode)
	}
	buf := st.assemble(values, m, s.Options, cookieExpires)
	if bytes.Equal(buf, old) {
		return buf, nil // as stored: nothing to keep, and no growth
	}
	unchanged, oldSize := false, len(old)
	tooLarge := st.cfg.maxLength > 0 && len(buf) > st.cfg.maxLength
	if keep := st.row.keepsText(); old != nil && st.cfg.byteStable && (keep || tooLarge) {
		// Over the limit, the comparison also tells whether the values
		// grew, which alone MaxLength refuses.
		var kept []byte
		if kept, unchanged, oldSize = keepUntouched(values, old, s.Values); keep && !bytes.Equal(kept, values) {
			values, buf = kept, st.assemble(kept, m, s.Options, cookieExpires)
		}
	}
	if st.cfg.maxLength > 0 && len(buf) > st.cfg.maxLength && !unchanged && len(values) > oldSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, Config.MaxLength is %d", ErrTooLarge, len(buf), st.cfg.maxLength)
	}
	return buf, nil
}

// assemble builds the sess object: the store's members, then the members
// of the codec's object values.
func (st *Store) assemble(values []byte, m meta, o *sessions.Options, cookieExpires time.Time) []byte {
	buf := make([]byte, 0, len(values)+200)
	buf = st.row.appendMembers(append(buf, '{'), m, o, cookieExpires)
	if inner := bytes.TrimSpace(values[1 : len(values)-1]); len(inner) > 0 {
		buf = append(buf, inner...)
	} else {
		buf = buf[:len(buf)-1] // the comma after the store's members
	}
	return append(buf, '}')
}

// keepUntouched returns the JSON object encoded, with each member whose
// value is unchanged from the object old holding that member's text from
// old instead: a value the application did not change is written back
// exactly as it was read, whatever writer wrote it and however the codec
// would write it now. values are the session's values, which encoded
// holds. unchanged reports whether every value is as old held it, oldSize
// how many bytes old's values took, the store's own members left out.
func keepUntouched(encoded, old []byte, values map[any]any) (_ []byte, unchanged bool, oldSize int) {
	var was map[string]json.RawMessage
	if json.Unmarshal(old, &was) != nil {
		return encoded, false, len(old)
	}
	var now map[string]json.RawMessage
	if json.Unmarshal(encoded, &now) != nil {
		return encoded, false, len(old)
	}
	oldSize = 2 // {}
	for k, v := range was {
		if k != metaKey && k != cookieKey {
			oldSize += len(k) + len(v) + 4 // "":,
		}
	}
	kept, same := false, true
	for k, text := range now {
		prev, ok := was[k]
		switch {
		case !ok:
			same = false
		case bytes.Equal(prev, text):
		default:
			if v, err := decodeValue(prev); err == nil && reflect.DeepEqual(v, values[k]) {
				now[k] = prev
				kept = true
			} else {
				same = false
			}
		}
	}
	for k := range was {
		if _, ok := now[k]; !ok && k != metaKey && k != cookieKey {
			same = false // a value was deleted
		}
	}
	if !kept {
		return encoded, same, oldSize
	}
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf := make([]byte, 0, len(encoded)+len(old))
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		name, _ := marshal(k)
		buf = append(buf, name...)
		buf = append(buf, ':')
		buf = append(buf, now[k]...)
	}
	return append(buf, '}'), same, oldSize
}

// decode fills values and m from a sess column written by this store, by
// another pgstore, or by Node.
func (st *Store) decode(raw []byte, values map[any]any, m *meta) error {
	*m = meta{}
	if err := st.cfg.codec.Decode(raw, values); err != nil {
		return err
	}
	if _, ok := values[metaKey]; !ok && bytes.Contains(raw, []byte(`"`+metaKey+`"`)) {
		// A codec that keeps the members it does not know to itself.
		obj, err := decodeObject(raw)
		if err != nil {
			return err
		}
		for _, k := range st.row.reserved() {
			if v, ok := obj[k]; ok {
				values[k] = v
			}
		}
	}
	return st.row.takeMembers(values, m)
}
