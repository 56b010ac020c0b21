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
	// active is when the store last wrote the row's expiry (epoch
	// seconds): the session's last activity, within the touch window.
	active int64
	// userAgent and ip are the client's, recorded at creation and at
	// Regenerate when Config.RecordClient is set.
	userAgent, ip string
}

// rowFormat is the layout of the store's own members in sess: native, or
// express-session's. New chooses it once, with the cookie format.
type rowFormat interface {
	// reserved lists the session keys the format keeps for itself.
	reserved() []string
	// setMaxAge records in m the lifetime of a session with options o.
	// defaultMaxAge is the store's Options.MaxAge.
	setMaxAge(m *meta, o *sessions.Options, defaultMaxAge int)
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
type nativeRow struct{}

func (nativeRow) reserved() []string { return []string{metaKey} }

func (nativeRow) setMaxAge(m *meta, o *sessions.Options, defaultMaxAge int) {
	m.maxAge, m.hasMaxAge = 0, false
	if o.MaxAge != defaultMaxAge {
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

func (expressRow) setMaxAge(m *meta, o *sessions.Options, _ int) {
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
	if m.active != 0 {
		buf = append(buf, `,"active":`...)
		buf = strconv.AppendInt(buf, m.active, 10)
	}
	for _, f := range [...]struct{ name, value string }{{"ua", m.userAgent}, {"ip", m.ip}} {
		if f.value != "" {
			text, _ := marshal(f.value) // made valid UTF-8 by clientInfo
			buf = append(buf, `,"`+f.name+`":`...)
			buf = append(buf, text...)
		}
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
	if a, ok := mm["active"].(int); ok && a > 0 {
		m.active = int64(a)
	}
	m.userAgent, _ = mm["ua"].(string)
	m.ip, _ = mm["ip"].(string)
}

// encode builds the sess column for s: the store's members, then the
// codec's. old is the row's sess as loaded, nil for a new row: every value
// the application did not change keeps its JSON text from there, and a
// session already larger than Config.MaxLength may be written back as long
// as it does not grow.
func (st *Store) encode(s *sessions.Session, m meta, cookieExpires time.Time, old []byte) ([]byte, error) {
	sess, _, err := st.encodeAgainst(s, m, cookieExpires, old)
	return sess, err
}

// encodeAgainst is encode that also reports whether the session's values
// are as old held them (as far as the row format compares them: in Express
// mode; otherwise only when the bytes are equal).
func (st *Store) encodeAgainst(s *sessions.Session, m meta, cookieExpires time.Time, old []byte) (_ []byte, unchanged bool, _ error) {
	for _, k := range st.row.reserved() {
		if _, ok := s.Values[k]; ok {
			return nil, false, fmt.Errorf("%w: session key %q: the name is reserved for the store's own data", ErrEncode, k)
		}
	}
	values, err := st.cfg.codec.Encode(s.Values)
	if err != nil {
		return nil, false, err
	}
	values = bytes.TrimSpace(values)
	if len(values) < 2 || values[0] != '{' || values[len(values)-1] != '}' {
		return nil, false, fmt.Errorf("%w: the codec did not produce a JSON object", ErrEncode)
	}
	buf := st.assemble(values, m, s.Options, cookieExpires)
	if bytes.Equal(buf, old) {
		return buf, true, nil // as stored: nothing to keep, and no growth
	}
	oldSize := len(old)
	tooLarge := st.cfg.maxLength > 0 && len(buf) > st.cfg.maxLength
	if keep := st.row.keepsText(); old != nil && st.cfg.byteStable && (keep || tooLarge) {
		// Over the limit, the comparison also tells whether the values
		// grew, which alone MaxLength refuses.
		var kept []byte
		if kept, unchanged, oldSize = keepUntouched(values, old, s.Values, st.row.reserved()); keep && !bytes.Equal(kept, values) {
			values, buf = kept, st.assemble(kept, m, s.Options, cookieExpires)
		}
	}
	if st.cfg.maxLength > 0 && len(buf) > st.cfg.maxLength && !unchanged && len(values) > oldSize {
		return nil, false, fmt.Errorf("%w: %d bytes encoded, Config.MaxLength is %d", ErrTooLarge, len(buf), st.cfg.maxLength)
	}
	return buf, unchanged && st.row.keepsText(), nil
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

// keepUntouched returns the JSON object encoded, written the way old (the
// row as loaded) holds it: the members whose values the application did
// not change keep their stored text, keys included, in their stored order
// (every duplicate of a key too, such as keys that differ only by a lone
// surrogate, which Go reads as the same); a changed value takes its
// encoded text at its key's first stored place; keys new to old follow, as
// encoded. So whatever another writer (Node) stored survives, byte for
// byte, except what the application changed. values are the session's
// values, which encoded holds. unchanged reports whether every value is as
// old held it; oldSize is how many bytes old's values took, the store's
// own members (reserved) left out.
func keepUntouched(encoded, old []byte, values map[any]any, reserved []string) (_ []byte, unchanged bool, oldSize int) {
	was, err := members(old)
	if err != nil {
		return encoded, false, len(old)
	}
	var encodedText map[string]json.RawMessage // the codec's own output: keys unique
	if json.Unmarshal(encoded, &encodedText) != nil {
		return encoded, false, len(old)
	}
	stored := make(map[string]json.RawMessage, len(was)) // the last of duplicates: what values were read from
	oldSize = 2                                          // {}
	for _, m := range was {
		if !slices.Contains(reserved, m.key) {
			stored[m.key] = m.text
			oldSize += len(m.name) + len(m.text) + 2 // :,
		}
	}
	untouched := make(map[string]bool, len(stored))
	unchanged = len(stored) == len(encodedText)
	for k, prev := range stored {
		text, ok := encodedText[k]
		switch {
		case !ok: // deleted
			unchanged = false
		case bytes.Equal(prev, text):
			untouched[k] = true
		default:
			if v, err := decodeValue(prev); err == nil && reflect.DeepEqual(v, values[k]) {
				untouched[k] = true
			} else {
				unchanged = false
			}
		}
	}
	buf := make([]byte, 0, len(encoded)+len(old))
	buf = append(buf, '{')
	add := func(name, text []byte) {
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(append(append(buf, name...), ':'), text...)
	}
	placed := make(map[string]bool, len(stored))
	for _, m := range was {
		switch {
		case slices.Contains(reserved, m.key):
		case untouched[m.key]:
			add(m.name, m.text)
		case !placed[m.key]:
			if text, ok := encodedText[m.key]; ok {
				add(m.name, text)
			}
			placed[m.key] = true
		}
	}
	added := make([]string, 0, len(encodedText))
	for k := range encodedText {
		if _, ok := stored[k]; !ok {
			added = append(added, k)
		}
	}
	slices.Sort(added)
	for _, k := range added {
		name, _ := marshal(k)
		add(name, encodedText[k])
	}
	return append(buf, '}'), unchanged, oldSize
}

// member is one member of a JSON object as written.
type member struct {
	key  string          // the key, decoded
	name []byte          // the key as written, quotes included
	text json.RawMessage // the value as written
}

// members returns the members of the JSON object data, in order and
// duplicates included, with their text as written: encoding/json's
// tokenizer reads them, and its offsets say where each key was.
func members(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	var ms []member
	for dec.More() {
		start := dec.InputOffset()
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		name := bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n,")
		var text json.RawMessage
		if err := dec.Decode(&text); err != nil {
			return nil, err
		}
		ms = append(ms, member{key: key, name: name, text: text})
	}
	return ms, nil
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
