package pgstore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/gob"
	"fmt"
	"hash"
	"strconv"
	"sync"

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

// secureCookieFormat is gorilla's securecookie format: the ID is signed
// with HMAC-SHA256 and, when a block key is given, encrypted with AES.
//
// New cookies are made by securecookie itself. Verifying runs on every
// request, so it is done here with the same steps but with pooled HMAC
// states instead of a new one per call; FuzzSecureCookieVerify checks that
// it accepts exactly what securecookie accepts.
type secureCookieFormat struct {
	codecs []securecookie.Codec
	keys   []verifyKey
}

// verifyKey is one key pair, ready to verify with.
type verifyKey struct {
	macs  *sync.Pool // of hash.Hash: HMAC-SHA256 keyed with the hash key
	block cipher.Block
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
	keys := make([]verifyKey, 0, len(codecs))
	for i := 0; i < len(pairs); i += 2 {
		hashKey := pairs[i]
		k := verifyKey{macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, hashKey) }}}
		if i+1 < len(pairs) && pairs[i+1] != nil {
			// checkKeyPairs accepted the size, so this cannot fail.
			k.block, _ = aes.NewCipher(pairs[i+1])
		}
		keys = append(keys, k)
	}
	for _, c := range codecs {
		sc := c.(*securecookie.SecureCookie)
		// The row's expire column decides how long a session lives, so
		// the cookie's own signed timestamp must not end it earlier (it
		// would break sessions whose MaxAge exceeds securecookie's 30
		// days). The ID is sent as raw bytes: no gob needed.
		sc.MaxAge(0)
		sc.SetSerializer(securecookie.NopEncoder{})
	}
	return &secureCookieFormat{codecs: codecs, keys: keys}
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
	sc := getScratch()
	defer putScratch(sc)
	// Two pairs can share a hash key (a rotation of the block key alone):
	// the signature then matches both, and only the right block key gives
	// an ID. Go on to the next key while the payload is not one.
	for keys := f.keys; len(keys) > 0; {
		id, i, ok := f.verify(name, value, keys, sc)
		if !ok {
			return "", false
		}
		keys = keys[i+1:]
		if len(id) == 0 || len(id) > 256 {
			continue
		}
		if isIDText(id) {
			return string(id), true
		}
		// Cookies of gorilla stores that gob-encode the ID (such as
		// antonlindstrom/pgstore), signed with the same keys, carry a
		// gob string: accept them so that migrated sessions stay
		// logged in. See docs/migration.md.
		if id, ok := legacyGobID(id); ok {
			return id, true
		}
	}
	return "", false
}

// verifyScratch holds the buffers one verification needs, pooled so that
// checking a cookie allocates nothing.
type verifyScratch struct {
	decoded []byte // the cookie, base64-decoded
	signed  []byte // what the MAC covers: name|date|value
	plain   []byte // the payload, decoded and decrypted
	sum     [sha256.Size]byte
}

var scratchPool = sync.Pool{New: func() any { return new(verifyScratch) }}

func getScratch() *verifyScratch { return scratchPool.Get().(*verifyScratch) }

func putScratch(sc *verifyScratch) {
	if cap(sc.signed) > 2*maxCookieLen { // a huge cookie name: let it go
		return
	}
	scratchPool.Put(sc)
}

// grow returns b with length n, reusing its storage when it is big enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
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
	sc := getScratch()
	defer putScratch(sc)
	_, _, ok := f.verify(name, value, f.keys[:1], sc)
	return ok
}

// verify checks value as securecookie.DecodeMulti does with these keys
// (no age limits, no serializer) and returns the payload: base64url of
// "date|value|mac", where mac is HMAC-SHA256 over "name|date|value", date
// is decimal, and value is base64url of the payload, AES-CTR encrypted
// behind its IV when the key has a block cipher. The payload it returns is
// in sc, valid until sc is reused, with the index in keys of the key that
// verified it.
func (f *secureCookieFormat) verify(name, value string, keys []verifyKey, sc *verifyScratch) ([]byte, int, bool) {
	if value == "" || len(value) > maxCookieLen {
		return nil, 0, false
	}
	sc.decoded = grow(sc.decoded, base64.URLEncoding.DecodedLen(len(value)))
	b := sc.decoded
	n, err := base64.URLEncoding.Decode(b, []byte(value))
	if err != nil {
		return nil, 0, false
	}
	b = b[:n]
	first := bytes.IndexByte(b, '|')
	if first < 0 {
		return nil, 0, false
	}
	second := bytes.IndexByte(b[first+1:], '|')
	if second < 0 {
		return nil, 0, false
	}
	signed, mac := b[:first+1+second], b[first+2+second:]
	date, payload := b[:first], b[first+1:first+1+second]
	sc.signed = append(append(append(sc.signed[:0], name...), '|'), signed...)
	for i, k := range keys {
		h := k.macs.Get().(hash.Hash)
		h.Reset()
		h.Write(sc.signed)
		ok := hmac.Equal(h.Sum(sc.sum[:0]), mac)
		k.macs.Put(h)
		if !ok {
			continue
		}
		// Past the MAC, a failure moves on to the next key, as DecodeMulti
		// does (it matters only when two pairs share a hash key).
		if _, err := strconv.ParseInt(string(date), 10, 64); err != nil {
			continue
		}
		sc.plain = grow(sc.plain, base64.URLEncoding.DecodedLen(len(payload)))
		plain := sc.plain
		m, err := base64.URLEncoding.Decode(plain, payload)
		if err != nil {
			continue
		}
		plain = plain[:m]
		if k.block != nil {
			size := k.block.BlockSize()
			if len(plain) <= size {
				continue
			}
			iv, text := plain[:size], plain[size:]
			cipher.NewCTR(k.block, iv).XORKeyStream(text, text)
			plain = text
		}
		return plain, i, true
	}
	return nil, 0, false
}
