package pgstore

import (
	"bytes"
	"encoding/gob"
	"fmt"

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
	// current reports whether the first (current) key signed it, so that
	// a cookie signed with an older key can be re-signed.
	decode(name, value string) (id string, current, ok bool)
	// idBytes is how many random bytes a new ID has.
	idBytes() int
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
