package pgstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/gorilla/securecookie"
)

// cookieFormat turns a session ID into a cookie value and back. Both
// implementations are immutable after construction, so concurrent requests
// share them without locks.
type cookieFormat interface {
	// encode signs id for the cookie called name.
	encode(name, id string) (string, error)
	// decode returns the ID in a cookie value, or ok false when the value
	// is not one this store signed (with any of its keys) for that name.
	decode(name, value string) (id string, ok bool)
	// idBytes is how many random bytes a new ID has.
	idBytes() int
	// current reports whether value was signed with the first (current)
	// key, so that a cookie signed with an older key can be re-signed.
	current(name, value string) bool
}

// newID returns a fresh session ID: n bytes from r, base64url without
// padding. A failing random source is an error, never a weaker ID.
func newID(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("pgstore: generate session ID: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// secureCookieFormat is gorilla's securecookie format: the ID is signed
// with HMAC-SHA256 and, when a block key is given, encrypted with AES.
type secureCookieFormat struct {
	codecs []securecookie.Codec
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

func (f *secureCookieFormat) decode(name, value string) (string, bool) {
	if value == "" || len(value) > maxCookieLen {
		return "", false
	}
	var id []byte
	if err := securecookie.DecodeMulti(name, value, &id, f.codecs...); err != nil {
		return "", false
	}
	if len(id) == 0 || len(id) > 256 {
		return "", false
	}
	if !isIDText(id) {
		// Cookies of gorilla stores that gob-encode the ID (such as
		// antonlindstrom/pgstore), signed with the same keys, carry a
		// gob string: accept them so that migrated sessions stay
		// logged in. See docs/migration.md.
		return legacyGobID(id)
	}
	return string(id), true
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

func (f *secureCookieFormat) current(name, value string) bool {
	var id []byte
	return securecookie.DecodeMulti(name, value, &id, f.codecs[0]) == nil
}

// logID is how a session ID appears in logs: a short hash that lets events
// be correlated without revealing anything usable.
func logID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// hashID is the sid stored for id when Config.HashIDs is set.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
