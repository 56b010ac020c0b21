package pgstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
)

// newID returns a fresh session ID: n bytes from r, base64url without
// padding. A failing random source is an error, never a weaker ID.
func newID(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("pgstore: generate session ID: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
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
