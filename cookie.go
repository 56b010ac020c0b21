package pgstore

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// cookieFormat turns a session ID into a cookie value and back. Both
// implementations are immutable after construction, so concurrent requests
// share them without locks.
type cookieFormat interface {
	// encode signs id for the cookie called name.
	encode(name, id string) (string, error)
	// decode returns the ID in a cookie value, or ok false when the value
	// is not one this store signed (with any of its keys) for that name.
	// current reports whether the first (current) key signed it, so that
	// a cookie signed with an older key can be re-signed.
	decode(name, value string) (id string, current, ok bool)
	// idBytes is how many random bytes a new ID has.
	idBytes() int
	// find returns the value of the cookie called name in r, as the
	// format's own side reads it.
	find(r *http.Request, name string) (string, bool)
}

// secureCookieFormat is gorilla's securecookie format: the ID is signed
// with HMAC-SHA256 and, when a block key is given, encrypted with AES.
// securecookie makes and verifies every cookie.
type secureCookieFormat struct {
	codecs []securecookie.Codec // one per key pair, the current one first
}

// nativeIDBytes is the size of the store's own session IDs: 256 bits.
const nativeIDBytes = 32

// maxCookieLen bounds what decode looks at; longer values are rejected
// before any work.
const maxCookieLen = 4096

func newSecureCookieFormat(keyPairs [][]byte) *secureCookieFormat {
	pairs := make([][]byte, len(keyPairs))
	for i, k := range keyPairs {
		// An empty block key (say, from an unset environment variable)
		// means no encryption, as nil does; securecookie would take it
		// for an AES key of size 0 and fail on every cookie.
		if i%2 == 1 && len(k) == 0 {
			k = nil
		}
		pairs[i] = k
	}
	codecs := securecookie.CodecsFromPairs(pairs...)
	for _, c := range codecs {
		sc := c.(*securecookie.SecureCookie)
		// The row's expire column decides how long a session lives, so
		// the cookie's own signed timestamp must not end it earlier (it
		// would break sessions whose MaxAge exceeds securecookie's 30
		// days). The ID is sent as raw bytes: no gob needed.
		sc.MaxAge(0)
		sc.SetSerializer(securecookie.NopEncoder{})
	}
	return &secureCookieFormat{codecs: codecs}
}

func (f *secureCookieFormat) encode(name, id string) (string, error) {
	v, err := securecookie.EncodeMulti(name, []byte(id), f.codecs...)
	if err != nil {
		return "", fmt.Errorf("pgstore: encode cookie: %w", err)
	}
	return v, nil
}

func (f *secureCookieFormat) decode(name, value string) (string, bool, bool) {
	if value == "" || len(value) > maxCookieLen {
		return "", false, false
	}
	// Each key pair in turn, rather than securecookie.DecodeMulti: two
	// pairs can share a hash key (a rotation of the block key alone), and
	// then the signature verifies under both while only the right block
	// key yields an ID.
	for i, c := range f.codecs {
		var payload []byte
		if c.Decode(name, value, &payload) != nil {
			continue
		}
		if id, ok := parseID(payload); ok {
			return id, i == 0, true
		}
	}
	return "", false, false
}

// parseID returns the session ID a verified cookie carries: the store's
// own, or the gob-encoded string that gorilla stores such as
// antonlindstrom/pgstore put in their cookies, so that sessions migrated
// from them stay logged in (see docs/migration.md).
func parseID(payload []byte) (string, bool) {
	if len(payload) == 0 || len(payload) > 256 {
		return "", false
	}
	if isIDText(payload) {
		return string(payload), true
	}
	return legacyGobID(payload)
}

// isIDText reports whether b is made of the characters IDs use: base64url,
// and base32 (upper case and digits) for IDs migrated from other stores.
func isIDText(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// legacyGobID decodes a gob-encoded string ID.
func legacyGobID(b []byte) (string, bool) {
	var id string
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&id); err != nil {
		return "", false
	}
	if id == "" || len(id) > 256 || !isIDText([]byte(id)) {
		return "", false
	}
	return id, true
}

func (f *secureCookieFormat) idBytes() int { return nativeIDBytes }

// find reads the cookie as net/http does: the first valid one of the name.
func (f *secureCookieFormat) find(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(name)
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// setCookie sends the session cookie. Its Max-Age runs to exp, which may be
// sooner than Options.MaxAge when the absolute timeout caps it. priority is
// the Priority attribute of a session Node made with one, or "".
func (st *Store) setCookie(r *http.Request, w http.ResponseWriter, s *sessions.Session, value string, now, exp time.Time, priority string) {
	opts := *s.Options
	if opts.MaxAge > 0 {
		if left := int(math.Ceil(exp.Sub(now).Seconds())); left < opts.MaxAge {
			opts.MaxAge = max(left, 1)
		}
	}
	if opts.Secure {
		st.warnInsecure(r)
	}
	http.SetCookie(w, sessions.NewCookie(s.Name(), value, &opts))
	if priority != "" {
		// net/http has no Priority attribute; Node's sessions may carry one.
		if h := w.Header()["Set-Cookie"]; len(h) > 0 {
			h[len(h)-1] += "; Priority=" + priority
		}
	}
}

// warnInsecure logs, once per store, that a Secure cookie is being set in
// answer to a plain-HTTP request for a host that is not loopback: browsers
// drop such cookies without a word, so the user is never logged in.
// Requests a TLS proxy forwarded with X-Forwarded-Proto: https are fine.
func (st *Store) warnInsecure(r *http.Request) {
	if st.cfg.logger == nil || r.TLS != nil || st.warnedInsecure.Load() || proxiedHTTPS(r) || isLoopback(r.Host) {
		return
	}
	if st.warnedInsecure.CompareAndSwap(false, true) {
		st.log.WarnContext(r.Context(), "pgstore: a Secure session cookie was set in answer to a plain-HTTP request; "+
			"unless a TLS proxy is in front, browsers drop it and the session is lost. Serve HTTPS (a TLS proxy "+
			"can say so with X-Forwarded-Proto), or set Options.Secure to false for development over HTTP",
			"host", r.Host)
	}
}

// proxiedHTTPS reports whether a proxy says the client's request came over
// HTTPS: X-Forwarded-Proto (its first value), Forwarded's proto, or
// X-Forwarded-Ssl.
func proxiedHTTPS(r *http.Request) bool {
	first := func(v string) string {
		v, _, _ = strings.Cut(v, ",")
		return strings.TrimSpace(v)
	}
	if strings.EqualFold(first(r.Header.Get("X-Forwarded-Proto")), "https") ||
		strings.EqualFold(r.Header.Get("X-Forwarded-Ssl"), "on") {
		return true
	}
	for _, pair := range strings.Split(first(r.Header.Get("Forwarded")), ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if strings.EqualFold(k, "proto") && strings.EqualFold(strings.Trim(v, `"`), "https") {
			return true
		}
	}
	return false
}

// isLoopback reports whether host (a Host header, with or without a port)
// is localhost or a loopback address, where browsers accept Secure cookies
// over plain HTTP.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
