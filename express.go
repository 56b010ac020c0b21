package pgstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
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
// session. Node answers 500 for a session without it.
type expressCookie struct {
	// originalMaxAge in milliseconds; nil means a browser-session cookie.
	originalMaxAge *int64
	// expires is when the cookie expires; zero when originalMaxAge is nil.
	expires time.Time
}

// appendExpressCookie writes the cookie member for a session with options o
// whose cookie expires at expires (zero for a browser-session cookie).
func appendExpressCookie(buf []byte, o *sessions.Options, expires time.Time) []byte {
	buf = append(buf, `"cookie":{"originalMaxAge":`...)
	if o.MaxAge > 0 {
		buf = strconv.AppendInt(buf, int64(o.MaxAge)*1000, 10)
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
	if domain, err := jsonString(o.Domain); o.Domain != "" && err == nil {
		buf = append(buf, `,"domain":`...)
		buf = append(buf, domain...)
	}
	path, err := jsonString(o.Path)
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
	return c, nil
}

// maxAgeSeconds converts originalMaxAge to a gorilla MaxAge: 0 for a
// browser-session cookie.
func (c expressCookie) maxAgeSeconds() int {
	if c.originalMaxAge == nil || *c.originalMaxAge <= 0 {
		return 0
	}
	return int((*c.originalMaxAge + 999) / 1000)
}

// jsonString is s as a JSON string, or an error when s cannot be stored.
func jsonString(s string) ([]byte, error) {
	if err := checkString(s); err != nil {
		return nil, err
	}
	return marshal(s)
}
