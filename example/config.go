package main

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pgsessions/pgstore/internal/pgcluster"
)

// appConfig is everything newApp needs. main builds it from the environment
// with configFromEnv; tests fill it in directly.
type appConfig struct {
	// Production marks the cookie Secure and turns every fallback off.
	Production bool

	// HashKey signs the session cookie: at least 32 bytes.
	HashKey []byte

	// DatabaseURL, when set, is the only server tried: if it does not
	// answer, newApp fails rather than quietly using something else.
	DatabaseURL string

	// LocalDSNs are tried in order when DatabaseURL is empty: the same list
	// the tests try (pgcluster.LocalDSNs).
	LocalDSNs []string

	// Throwaway lets newApp start a temporary PostgreSQL cluster when no
	// server answers. It is deleted on Close.
	Throwaway bool

	// Schema holds the sessions table. Default: "" (the connection's
	// search_path, usually public).
	Schema string

	// Logger receives the app's and the store's log lines. Required.
	Logger *slog.Logger
}

// configFromEnv reads APP_ENV, SESSION_SECRET and DATABASE_URL (see the
// package doc). It fails in production when a setting that must not be
// guessed is missing, and warns in development when it guesses one.
func configFromEnv(getenv func(string) string, log *slog.Logger) (appConfig, error) {
	cfg := appConfig{DatabaseURL: getenv("DATABASE_URL"), Logger: log}
	switch env := getenv("APP_ENV"); env {
	case "production":
		cfg.Production = true
	case "", "development":
	default:
		return cfg, fmt.Errorf(`APP_ENV is %q; use "production" or "development"`, env)
	}

	secret := getenv("SESSION_SECRET")
	switch {
	case cfg.Production && secret == "":
		return cfg, fmt.Errorf("APP_ENV=production needs SESSION_SECRET (at least %d bytes) to sign session cookies: "+
			"set it to a long random value, e.g. `openssl rand -base64 48`, the same on every instance", minSecretLen)
	case cfg.Production && len(secret) < minSecretLen:
		// The length only: the secret itself never goes to the log.
		return cfg, fmt.Errorf("APP_ENV=production needs a SESSION_SECRET of at least %d bytes; it has %d: "+
			"set it to a long random value, e.g. `openssl rand -base64 48`", minSecretLen, len(secret))
	case secret != "":
		cfg.HashKey = hashKeyFromSecret(secret)
		if len(secret) < minSecretLen {
			log.Warn(fmt.Sprintf("SESSION_SECRET is shorter than %d bytes, which production refuses; use a long random value, e.g. `openssl rand -base64 48`", minSecretLen))
		}
	default:
		cfg.HashKey = make([]byte, 32)
		if _, err := rand.Read(cfg.HashKey); err != nil {
			return cfg, fmt.Errorf("make a session key: %w", err)
		}
		log.Warn("SESSION_SECRET is not set: signing cookies with a random key, so sessions end when the process stops (development only)")
	}

	if cfg.DatabaseURL == "" {
		if cfg.Production {
			return cfg, errors.New("APP_ENV=production needs DATABASE_URL, the PostgreSQL server that keeps the sessions")
		}
		// The tests' list, so that both find the same server. pgcluster
		// is internal to pgstore's repository: an app of your own lists
		// its own.
		cfg.LocalDSNs = pgcluster.LocalDSNs(getenv)
		cfg.Throwaway = true
	}
	return cfg, nil
}

// minSecretLen is the shortest SESSION_SECRET production accepts, in bytes:
// the length pgstore requires of a signing key.
const minSecretLen = 32

// hashKeyFromSecret turns SESSION_SECRET into the HMAC key that signs
// cookies. pgstore wants 32 bytes or more: a secret that long is the key; a
// shorter one (development only) is stretched to 32 bytes with SHA-256, which
// makes it the right length but no harder to guess.
func hashKeyFromSecret(secret string) []byte {
	if len(secret) >= minSecretLen {
		return []byte(secret)
	}
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
