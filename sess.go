package pgstore

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/sessions"
)

// meta is what the store keeps inside sess besides the values, in a member
// named "_pgstore" (and, in Express mode, the "cookie" member):
//
//	"_pgstore":{"created":1764230400,"maxAge":7776000}
//
// created (epoch seconds) drives the absolute timeout. It lives inside sess
// so that it survives rewrites by either Go or Node: express-session keeps
// unknown top-level members of a session as they are. maxAge is written only
// when the session's MaxAge differs from the store default ("remember me"),
// so that sessions follow a changed default; in Express mode the cookie's
// originalMaxAge carries it instead.
type meta struct {
	created   int64
	maxAge    int
	hasMaxAge bool
	cookie    expressCookie
}

// setMaxAge records the session's own lifetime in m.
func (st *Store) setMaxAge(m *meta, o *sessions.Options) {
	switch {
	case st.cfg.express:
		m.maxAge, m.hasMaxAge = max(o.MaxAge, 0), true
	case o.MaxAge != st.cfg.options.MaxAge:
		m.maxAge, m.hasMaxAge = o.MaxAge, true
	default:
		m.maxAge, m.hasMaxAge = 0, false
	}
}

// encode builds the sess column for s: the store's members, then the
// codec's. cookieExpires is the cookie's expiry recorded in Express mode.
func (st *Store) encode(s *sessions.Session, m meta, cookieExpires time.Time) ([]byte, error) {
	if st.cfg.express {
		if _, ok := s.Values[cookieKey]; ok {
			return nil, fmt.Errorf("pgstore: session key %q: %w: the name is reserved for express-session's cookie", cookieKey, ErrEncode)
		}
	}
	values, err := st.cfg.codec.Encode(s.Values)
	if err != nil {
		return nil, err
	}
	values = bytes.TrimSpace(values)
	if len(values) < 2 || values[0] != '{' || values[len(values)-1] != '}' {
		return nil, fmt.Errorf("pgstore: %w: the codec did not produce a JSON object", ErrEncode)
	}
	buf := make([]byte, 0, len(values)+200)
	buf = append(buf, '{')
	if st.cfg.express {
		buf = appendExpressCookie(buf, s.Options, cookieExpires)
		buf = append(buf, ',')
	}
	buf = append(buf, `"`+metaKey+`":{"created":`...)
	buf = strconv.AppendInt(buf, m.created, 10)
	if m.hasMaxAge && !st.cfg.express {
		buf = append(buf, `,"maxAge":`...)
		buf = strconv.AppendInt(buf, int64(m.maxAge), 10)
	}
	buf = append(buf, '}')
	if inner := bytes.TrimSpace(values[1 : len(values)-1]); len(inner) > 0 {
		buf = append(buf, ',')
		buf = append(buf, inner...)
	}
	buf = append(buf, '}')
	if st.cfg.maxLength > 0 && len(buf) > st.cfg.maxLength {
		return nil, fmt.Errorf("%w: %d bytes encoded, Config.MaxLength is %d", ErrTooLarge, len(buf), st.cfg.maxLength)
	}
	return buf, nil
}

// decode fills values and m from a sess column written by this store, by
// another pgstore, or by Node.
func (st *Store) decode(raw []byte, values map[any]any, m *meta) error {
	*m = meta{}
	var cookieVal any
	if _, ok := st.cfg.codec.(JSONCodec); ok {
		// JSONCodec.Decode, reading the store's member straight into m.
		err := readObjectWith(raw, func(d *jsonReader, key string) error {
			if key == metaKey {
				return d.meta(m)
			}
			v, err := d.value()
			if err == nil {
				values[key] = v
			}
			return err
		})
		if err != nil {
			return err
		}
		if st.cfg.express {
			cookieVal = values[cookieKey]
		}
	} else {
		if err := st.cfg.codec.Decode(raw, values); err != nil {
			return err
		}
		delete(values, metaKey)
		obj, err := decodeObject(raw)
		if err != nil {
			return err
		}
		cookieVal = obj[cookieKey]
		metaFromValue(obj[metaKey], m)
	}
	if st.cfg.express {
		delete(values, cookieKey)
		c, err := parseExpressCookie(cookieVal)
		if err != nil {
			return err
		}
		m.cookie = c
		m.maxAge, m.hasMaxAge = c.maxAgeSeconds(), true
	}
	return nil
}

// metaFromValue sets m's created and maxAge from the decoded "_pgstore"
// member v: created when it is a positive integer, maxAge when it is an
// integer; anything else is ignored.
func metaFromValue(v any, m *meta) {
	m.created, m.maxAge, m.hasMaxAge = 0, 0, false
	mm, ok := v.(map[string]any)
	if !ok {
		return
	}
	if c, ok := mm["created"].(int); ok && c > 0 {
		m.created = int64(c)
	}
	if ma, ok := mm["maxAge"].(int); ok {
		m.maxAge, m.hasMaxAge = ma, true
	}
}

// meta reads the value of a "_pgstore" member into m, as metaFromValue
// would take it from the decoded value, without building that value. As
// in a map, the last of duplicate members wins.
func (d *jsonReader) meta(m *meta) error {
	m.created, m.maxAge, m.hasMaxAge = 0, 0, false
	d.skipSpace()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		_, err := d.value()
		return err
	}
	return d.members(func(d *jsonReader, key string) error {
		d.skipSpace()
		n, isInt := 0, false
		if d.pos < len(d.data) && (d.data[d.pos] == '-' || '0' <= d.data[d.pos] && d.data[d.pos] <= '9') {
			var err error
			if n, isInt, _, err = d.scanNumber(); err != nil {
				return err
			}
		} else if _, err := d.value(); err != nil {
			return err
		}
		switch key {
		case "created":
			m.created = 0
			if isInt && n > 0 {
				m.created = int64(n)
			}
		case "maxAge":
			m.maxAge, m.hasMaxAge = n, isInt
		}
		return nil
	})
}
