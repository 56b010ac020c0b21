package pgstore

import (
	"crypto/sha256"
	"encoding/base64"
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
	codecs := securecookie.CodecsFromPairs(keyPairs...)
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
	return string(id), true
}

func (f *secureCookieFormat) idBytes() int { return nativeIDBytes }

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
