package main

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os/user"
	"strings"
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

	// LocalDSNs are tried in order when DatabaseURL is empty.
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
	case secret != "":
		cfg.HashKey = hashKeyFromSecret(secret)
		if len(secret) < 32 {
			log.Warn("SESSION_SECRET is shorter than 32 bytes; use a long random value, e.g. `openssl rand -base64 48`")
		}
	case cfg.Production:
		return cfg, errors.New("APP_ENV=production needs SESSION_SECRET to sign session cookies: " +
			"set it to a long random value, e.g. `openssl rand -base64 48`, the same on every instance")
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
		cfg.LocalDSNs = localDSNs(getenv)
		cfg.Throwaway = true
	}
	return cfg, nil
}

// hashKeyFromSecret turns SESSION_SECRET into the HMAC key that signs
// cookies. securecookie wants 32 bytes or more: a secret that long is the
// key; a shorter one is stretched to 32 bytes with SHA-256, which makes it
// the right length but no harder to guess.
func hashKeyFromSecret(secret string) []byte {
	if len(secret) >= 32 {
		return []byte(secret)
	}
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// localDSNs lists the servers to try when DATABASE_URL is unset: the local
// server (PGHOST and PGPORT, default 127.0.0.1:5432; PGHOST may be a socket
// directory) as PGUSER or the current OS
// user, in PGDATABASE, the database named after the user, then "postgres".
func localDSNs(getenv func(string) string) []string {
	host, port := getenv("PGHOST"), getenv("PGPORT")
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	name := getenv("PGUSER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "postgres"
	}

	var dsns []string
	seen := make(map[string]bool)
	for _, db := range []string{getenv("PGDATABASE"), name, "postgres"} {
		if db == "" || seen[db] {
			continue
		}
		seen[db] = true
		// A local server answers at once or not at all: wait 3 seconds.
		q := url.Values{"sslmode": {"disable"}, "connect_timeout": {"3"}}
		u := url.URL{Scheme: "postgres", User: url.User(name), Path: "/" + db}
		if strings.HasPrefix(host, "/") { // a Unix socket directory
			q.Set("host", host)
			q.Set("port", port)
		} else {
			u.Host = net.JoinHostPort(host, port)
		}
		u.RawQuery = q.Encode()
		dsns = append(dsns, u.String())
	}
	return dsns
}
