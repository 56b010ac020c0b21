package pgstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/sessions"
)

// expressFormat is express-session's signed cookie, as made by the
// cookie-signature package: "s:" + sid + "." + base64(HMAC-SHA256(secret,
// sid)) without padding, the whole value URL-encoded.
type expressFormat struct {
	secrets [][]byte
}

// expressIDBytes matches express-session's default IDs: 24 random bytes,
// 32 base64url characters.
const expressIDBytes = 24

func newExpressFormat(secrets []string) *expressFormat {
	f := &expressFormat{secrets: make([][]byte, len(secrets))}
	for i, s := range secrets {
		f.secrets[i] = []byte(s)
	}
	return f
}

func expressSignature(secret []byte, sid string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(sid))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

func (f *expressFormat) encode(_, id string) (string, error) {
	return encodeURIComponent("s:" + id + "." + expressSignature(f.secrets[0], id)), nil
}

func (f *expressFormat) decode(_, value string) (string, bool, bool) {
	if len(value) > maxCookieLen {
		return "", false, false
	}
	// Node decodes cookie values that contain '%'; so do we, and we accept
	// the raw form too.
	if strings.IndexByte(value, '%') >= 0 {
		v, err := url.PathUnescape(value)
		if err != nil {
			return "", false, false
		}
		value = v
	}
	if !strings.HasPrefix(value, "s:") {
		return "", false, false
	}
	value = value[2:]
	dot := strings.LastIndexByte(value, '.')
	if dot <= 0 {
		return "", false, false
	}
	sid, sig := value[:dot], value[dot+1:]
	for i, secret := range f.secrets {
		if hmac.Equal([]byte(expressSignature(secret, sid)), []byte(sig)) {
			return sid, i == 0, true
		}
	}
	return "", false, false
}

func (f *expressFormat) idBytes() int { return expressIDBytes }

// find reads the cookie as express-session does (through Node's cookie
// package), so that both sides pick the same one: the first cookie of the
// name, valid or not, its value trimmed of spaces and tabs and unquoted.
// net/http would skip a first value holding a backslash or a quote and
// take the next, and drop one with a tab.
func (f *expressFormat) find(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for _, pair := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok || strings.Trim(k, " \t") != name {
				continue
			}
			v = strings.Trim(v, " \t")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// encodeURIComponent escapes s as JavaScript's encodeURIComponent does,
// which is how express-session writes its cookie values.
func encodeURIComponent(s string) string {
	const upperHex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-_.!~*'()", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
		}
	}
	return b.String()
}

// expressCookie is the "cookie" member express-session keeps in every
// session. Node answers 500 for a session without it, and sets its own
// Set-Cookie from it.
type expressCookie struct {
	// originalMaxAge in milliseconds; nil means a browser-session cookie.
	originalMaxAge *int64
	// expires is when the cookie expires; zero when originalMaxAge is nil.
	expires time.Time
	// partitioned is express-session's partitioned (CHIPS) flag.
	partitioned bool
	// other holds the fields the store does not set from sessions.Options
	// (priority, and whatever later express-session versions add), written
	// back as they were.
	other map[string]any
}

// expressCookieFields are the fields of the cookie member the store
// writes from the session's options.
var expressCookieFields = []string{"originalMaxAge", "expires", "secure", "httpOnly", "domain", "path", "sameSite", "partitioned"}

// appendExpressCookie writes the cookie member for a session with options o
// whose cookie expires at expires (zero for a browser-session cookie). was
// is the member as loaded (zero for a new session): its millisecond
// lifetime is kept while o.MaxAge is that lifetime rounded up, and its
// other fields are kept.
func appendExpressCookie(buf []byte, o *sessions.Options, expires time.Time, was expressCookie) []byte {
	buf = append(buf, `"cookie":{"originalMaxAge":`...)
	if o.MaxAge > 0 {
		ms := int64(o.MaxAge) * 1000
		if was.originalMaxAge != nil && was.maxAgeSeconds() == o.MaxAge {
			ms = *was.originalMaxAge
		}
		buf = strconv.AppendInt(buf, ms, 10)
		buf = append(buf, `,"expires":"`...)
		buf = expires.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z")
		buf = append(buf, '"')
	} else {
		buf = append(buf, `null,"expires":null`...)
	}
	buf = append(buf, `,"secure":`...)
	buf = strconv.AppendBool(buf, o.Secure)
	buf = append(buf, `,"httpOnly":`...)
	buf = strconv.AppendBool(buf, o.HttpOnly)
	if domain, err := quoteJSON(o.Domain); o.Domain != "" && err == nil {
		buf = append(buf, `,"domain":`...)
		buf = append(buf, domain...)
	}
	path, err := quoteJSON(o.Path)
	if err != nil {
		path = []byte(`"/"`)
	}
	buf = append(buf, `,"path":`...)
	buf = append(buf, path...)
	switch o.SameSite {
	case http.SameSiteLaxMode:
		buf = append(buf, `,"sameSite":"lax"`...)
	case http.SameSiteStrictMode:
		buf = append(buf, `,"sameSite":"strict"`...)
	case http.SameSiteNoneMode:
		buf = append(buf, `,"sameSite":"none"`...)
	}
	if o.Partitioned {
		buf = append(buf, `,"partitioned":true`...)
	}
	if len(was.other) > 0 {
		if other, err := marshal(was.other); err == nil && len(other) > 2 {
			buf = append(buf, ',')
			buf = append(buf, other[1:len(other)-1]...)
		}
	}
	return append(buf, '}')
}

// parseExpressCookie reads the cookie member of a row written by either
// side, leniently: Node may write null for expires and originalMaxAge.
func parseExpressCookie(v any) (expressCookie, error) {
	var c expressCookie
	m, ok := v.(map[string]any)
	if !ok {
		return c, fmt.Errorf("%w: the %q member is missing or not an object", ErrCorrupt, cookieKey)
	}
	switch ma := m["originalMaxAge"].(type) {
	case int:
		n := int64(ma)
		c.originalMaxAge = &n
	case float64:
		n := int64(ma)
		c.originalMaxAge = &n
	}
	if s, ok := m["expires"].(string); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return c, fmt.Errorf("%w: cookie.expires: %w", ErrCorrupt, err)
		}
		c.expires = t
	}
	c.partitioned, _ = m["partitioned"].(bool)
	for k, v := range m {
		if !slices.Contains(expressCookieFields, k) {
			if c.other == nil {
				c.other = make(map[string]any)
			}
			c.other[k] = v
		}
	}
	return c, nil
}

// priority is the Priority attribute express-session sets from the
// cookie's priority field ("High", "Medium" or "Low"), or "".
func (c expressCookie) priority() string {
	p, _ := c.other["priority"].(string)
	switch strings.ToLower(p) {
	case "high":
		return "High"
	case "medium":
		return "Medium"
	case "low":
		return "Low"
	}
	return ""
}

// maxAgeSeconds converts originalMaxAge to a gorilla MaxAge: 0 for a
// browser-session cookie.
func (c expressCookie) maxAgeSeconds() int {
	if c.originalMaxAge == nil || *c.originalMaxAge <= 0 {
		return 0
	}
	return int((*c.originalMaxAge + 999) / 1000)
}

// quoteJSON is s as a JSON string, or an error when s is not valid UTF-8.
func quoteJSON(s string) ([]byte, error) {
	if err := checkString(s); err != nil {
		return nil, err
	}
	return marshal(s)
}
