package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/sessions"
	_ "github.com/lib/pq" // the "postgres" driver for database/sql

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgcluster"
)

// localTimeout bounds each attempt to reach a server on localhost.
const localTimeout = 5 * time.Second

// Pool limits. database/sql keeps only 2 idle connections by default, so
// under concurrent requests most queries would first open a new connection
// (a TCP and authentication round trip, and a new server process) and close
// it afterwards. These are the limits pgstore.Open sets; the example opens
// its own pool because /healthz pings it.
const (
	maxConns        = 20
	connMaxIdleTime = 5 * time.Minute
)

// touchInterval is how far a session's recorded activity may lag behind
// its last request (pgstore.Config.TouchInterval): the sessions page says
// "within the last minute" rather than pretend to be exact.
const touchInterval = pgstore.DefaultTouchInterval

// storage is where sessions are kept, with what it takes to release it.
type storage struct {
	store sessions.Store

	// pg is store as a *pgstore.Store, which can list a user's sessions
	// and end them; nil for the development cookie store, which cannot.
	pg *pgstore.Store

	// regenerate saves a session under a new ID, so that an ID planted
	// before login is worthless after it (session fixation).
	regenerate func(*http.Request, http.ResponseWriter, *sessions.Session) error

	// db is the pool behind the store; nil for the development store.
	db *sql.DB

	// kind names the storage for the page and the log.
	kind string

	// close releases the store, then the pool, then any throwaway cluster.
	close func() error
}

// cookieOptions are the session cookie's attributes: pgstore's defaults
// (Path /, 30 days, HttpOnly, SameSite Lax), with Secure only in production
// so that the cookie also works over plain http://localhost in development.
func cookieOptions(production bool) *sessions.Options {
	opts := pgstore.DefaultOptions()
	opts.Secure = production
	return opts
}

// openStorage picks where sessions live: DATABASE_URL; else, in development,
// a server on localhost, a throwaway cluster, and finally signed cookies.
func openStorage(ctx context.Context, cfg appConfig) (*storage, error) {
	log := cfg.Logger
	if cfg.DatabaseURL != "" {
		s, err := openPostgres(ctx, cfg, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL (%s): %w", redact(cfg.DatabaseURL), err)
		}
		log.Info("Session storage: PostgreSQL", "from", "DATABASE_URL", "database", redact(cfg.DatabaseURL))
		return s, nil
	}
	if cfg.Production {
		return nil, errors.New("production needs DATABASE_URL; it never falls back to development storage")
	}
	if cfg.Throwaway {
		removeStaleClusters(log)
	}

	for _, dsn := range cfg.LocalDSNs {
		tryCtx, cancel := context.WithTimeout(ctx, localTimeout)
		s, err := openPostgres(tryCtx, cfg, dsn)
		cancel()
		if ctx.Err() != nil { // stopped by a signal: no more fallbacks
			return nil, ctx.Err()
		}
		if err != nil {
			log.Info("no usable PostgreSQL here", "database", redact(dsn), "err", err)
			continue
		}
		log.Info("Session storage: PostgreSQL", "from", "localhost", "database", redact(dsn))
		log.Warn("DATABASE_URL is not set: using a local server found by guessing (development only)")
		return s, nil
	}

	if cfg.Throwaway {
		s, err := openThrowaway(ctx, cfg)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn("could not start a throwaway PostgreSQL cluster", "err", err)
	}
	return openCookieStore(cfg), nil
}

// removeStaleClusters deletes the throwaway clusters that earlier runs left
// behind when they could not clean up (killed with SIGKILL, or a second
// Ctrl-C during shutdown), stopping their servers first.
func removeStaleClusters(log *slog.Logger) {
	removed, err := pgcluster.RemoveStale("")
	for _, dir := range removed {
		log.Info("removed a throwaway PostgreSQL cluster left by an earlier run", "dir", dir)
	}
	if err != nil {
		log.Warn("could not remove a throwaway PostgreSQL cluster left by an earlier run", "err", err)
	}
}

// openPostgres opens a pool on dsn and a pgstore.Store on it. The Store
// creates its table when missing and never closes the pool, so close does.
func openPostgres(ctx context.Context, cfg appConfig, dsn string) (*storage, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	store, err := pgstore.NewContext(ctx, db, pgstore.Config{
		KeyPairs:   [][]byte{cfg.HashKey},
		Options:    cookieOptions(cfg.Production),
		SchemaName: cfg.Schema,
		Logger:     cfg.Logger,
		// The sessions page: keep each session's browser and IP address
		// (from the login), and index the sessions by user. The IP is
		// RemoteAddr's; behind a proxy, set ClientIP to read the address
		// the proxy vouches for.
		TouchInterval: touchInterval,
		RecordClient:  true,
		IndexKeys:     []string{userKey},
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &storage{
		store:      store,
		pg:         store,
		regenerate: store.Regenerate,
		db:         db,
		kind:       "PostgreSQL",
		close: func() error {
			return errors.Join(store.Close(), db.Close())
		},
	}, nil
}

// openThrowaway starts a new PostgreSQL cluster in a temporary directory
// and keeps sessions there until close, which deletes it. main calls close on
// every signal it can catch; a cluster left by a run that could not (SIGKILL)
// is removed by the next run's removeStaleClusters.
//
// pgcluster is internal to pgstore's repository, so an app outside it cannot
// import it: copy the rest of this file and drop this step, or run
// PostgreSQL in a container for development.
func openThrowaway(ctx context.Context, cfg appConfig) (*storage, error) {
	cfg.Logger.Warn("no PostgreSQL server found: starting a throwaway cluster; its sessions are deleted on shutdown (development only)")
	cluster, err := pgcluster.StartCluster()
	if err != nil {
		return nil, err
	}
	s, err := openPostgres(ctx, cfg, cluster.DSN())
	if err != nil {
		cluster.Remove()
		return nil, err
	}
	s.kind = "PostgreSQL (throwaway cluster)"
	closeStore := s.close
	s.close = func() error {
		err := closeStore()
		cluster.Remove()
		cfg.Logger.Info("throwaway PostgreSQL cluster stopped and deleted", "dir", cluster.Dir())
		return err
	}
	cfg.Logger.Info("Session storage: PostgreSQL", "from", "throwaway cluster", "database", cluster.DSN(), "dir", cluster.Dir())
	return s, nil
}

// openCookieStore keeps sessions in signed cookies, the last resort when no
// database is around. The values travel with every request, readable by the
// client (signed, not encrypted), and a copied cookie cannot be revoked.
// Regenerating is a plain save: with no server-side ID there is nothing to
// fixate.
func openCookieStore(cfg appConfig) *storage {
	store := sessions.NewCookieStore(cfg.HashKey)
	store.Options = cookieOptions(cfg.Production)
	store.MaxAge(store.Options.MaxAge) // also bounds the age of signatures
	cfg.Logger.Warn("Session storage: signed cookies (DEVELOPMENT ONLY: logout cannot revoke a copied cookie, and nothing is shared between instances)")
	cfg.Logger.Warn("Set DATABASE_URL to use PostgreSQL session storage")
	return &storage{
		store: store,
		regenerate: func(r *http.Request, w http.ResponseWriter, s *sessions.Session) error {
			return s.Save(r, w)
		},
		kind:  "signed cookies (development only)",
		close: func() error { return nil },
	}
}

// redact hides the password in a URL DSN for the log.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(a key=value DSN)"
	}
	return u.Redacted()
}
