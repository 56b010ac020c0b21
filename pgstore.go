package pgstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/sessions"
	_ "github.com/lib/pq" // the driver Open uses
)

var _ sessions.Store = (*Store)(nil)

// ErrSessionNotFound is returned by Save and Regenerate when the session's
// row no longer exists: another request logged it out or regenerated it, it
// was revoked, or it expired after it was loaded. Neither writes the row
// again, so a logout is never undone by a slower request.
var ErrSessionNotFound = errors.New("pgstore: session no longer exists")

// ErrTooLarge is returned by Save, Regenerate and Import when the encoded
// session is longer than Config.MaxLength. Nothing is written.
var ErrTooLarge = errors.New("pgstore: session too large")

// ErrCorrupt is wrapped by the error Get returns when a session's row exists
// but cannot be read (its sess is not a JSON object, or not one this store's
// codec can decode). The session returned with it is new and empty, and
// saving it creates a new row under a new ID; the unreadable row is left for
// inspection. Applications usually go on with the new session, where other
// Get errors (the database is unreachable) call for failing the request.
var ErrCorrupt = errors.New("pgstore: session row cannot be read")

// ErrReadOnly is wrapped by the error New returns when the database it
// reaches is a standby or the connection is read-only. The store reads
// sessions where it writes them, never from a replica, which may lag
// behind a login (docs/production.md).
var ErrReadOnly = errors.New("pgstore: database is read-only")

var errClosed = errors.New("pgstore: store is closed")

// Store is a gorilla/sessions Store that keeps sessions in a PostgreSQL table
// with connect-pg-simple's layout. The cookie carries only a signed session
// ID.
//
// A Store is safe for concurrent use. Create one with New or Open and share
// it; call Close when done. The zero value is not usable.
type Store struct {
	// Options are the cookie attributes and lifetime each new or loaded
	// session starts with (a copy of them), as in gorilla's own stores:
	// New sets them from Config.Options, and code written for
	// CookieStore or FilesystemStore may change them, or replace them,
	// before the store serves requests. Nil means DefaultOptions().
	// Changing them while requests are served is a data race.
	//
	// MaxAge here is also the lifetime of sessions that did not set one
	// of their own: changing it moves the expiry of existing sessions at
	// their next touch, as a changed Config.Options does after a restart.
	Options *sessions.Options

	db     *sql.DB
	ownsDB bool
	cfg    settings
	format cookieFormat // the cookie: securecookie's or express-session's
	row    rowFormat    // the store's own members in sess
	tomb   tombstones   // Express mode's tombstone table; zero in native mode
	log    *slog.Logger

	// Seams for tests: the clock and the random source.
	now  func() time.Time
	rand io.Reader

	// dbOffset is the database's clock minus this process's, in
	// microseconds, as last seen by the setup query or a load. Expiry is
	// judged by the database's clock in every statement; the offset makes
	// the expiries this process writes agree with it.
	dbOffset atomic.Int64

	// sessTextErr is why New could not find or create the function Revoke
	// reads sess through; nil when it exists. Set before New returns.
	sessTextErr error

	// warnedInsecure is set once the plain-HTTP warning was logged.
	warnedInsecure atomic.Bool

	stmts statements
	stats counters

	// handleKeys derive session handles (ListSessions) from IDs: the
	// first lists, every one ends.
	handleKeys [][]byte

	pruneStop context.CancelFunc
	pruneDone chan struct{}

	// The background build of Config.IndexKeys' missing indexes.
	unindexed []string
	indexStop context.CancelFunc
	indexDone chan struct{}

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// New returns a Store on db, which it never closes. It validates cfg, creates
// the table and the function Revoke reads sess through (schema.sql) unless
// cfg.SkipCreateTable, prepares its statements and starts the background
// pruner. Setup queries are bounded by Config.QueryTimeout; use
// NewContext to bound them by a context of your own.
func New(db *sql.DB, cfg Config) (*Store, error) {
	return NewContext(context.Background(), db, cfg)
}

// NewContext is New with a context that bounds the setup queries.
func NewContext(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	return newStore(ctx, db, cfg, hooks{})
}

// Pool limits Open sets on the pool it opens. database/sql keeps only 2
// idle connections by default, so under concurrency an untuned pool opens
// and closes a connection on most requests.
const (
	// OpenMaxConns is the MaxOpenConns and MaxIdleConns Open sets.
	OpenMaxConns = 20
	// OpenConnMaxIdleTime is the ConnMaxIdleTime Open sets.
	OpenConnMaxIdleTime = 5 * time.Minute
)

// Open opens a connection pool with lib/pq for dsn (a URL or key=value
// string) and returns a Store on it. The Store's Close closes the pool.
//
// The pool keeps up to OpenMaxConns connections open and idle, and closes
// those idle for OpenConnMaxIdleTime. Change them through DB.
func Open(dsn string, cfg Config) (*Store, error) {
	return OpenContext(context.Background(), dsn, cfg)
}

// OpenContext is Open with a context that bounds the setup queries.
//
// Unless dsn sets connect_timeout, Open sets it to 10 seconds: without it
// lib/pq waits forever for a server that accepts connections but does not
// answer, whatever the context says. With Config.TransactionPooler, unless
// dsn sets binary_parameters, Open sets it to yes, so that lib/pq sends
// each query in one round trip the pooler cannot split.
func OpenContext(ctx context.Context, dsn string, cfg Config) (*Store, error) {
	dsn = withConnectTimeout(dsn)
	if cfg.TransactionPooler {
		dsn = withDefault(dsn, "binary_parameters", "yes")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open %s: %w", describeDSN(dsn), err)
	}
	db.SetMaxOpenConns(OpenMaxConns)
	db.SetMaxIdleConns(OpenMaxConns)
	db.SetConnMaxIdleTime(OpenConnMaxIdleTime)
	st, err := newStore(ctx, db, cfg, hooks{})
	if err != nil {
		db.Close()
		if errors.Is(err, ErrConfig) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (connecting to %s)", err, describeDSN(dsn))
	}
	st.ownsDB = true
	return st, nil
}

// options returns a copy of the store's cookie options.
func (st *Store) options() sessions.Options {
	if st.Options == nil {
		return *DefaultOptions()
	}
	return *st.Options
}

// MaxAge sets the lifetime of new sessions, and of sessions that did not
// set one of their own, in seconds: Options.MaxAge, as gorilla's stores
// do. Call it before the store serves requests.
func (st *Store) MaxAge(age int) {
	if st.Options == nil {
		st.Options = DefaultOptions()
	}
	st.Options.MaxAge = age
}

// MaxLength sets the largest encoded session Save writes, in bytes, as
// Config.MaxLength does, with the meaning of gorilla's stores: l <= 0
// means no limit. Call it before the store serves requests.
func (st *Store) MaxLength(l int) {
	st.cfg.maxLength = max(l, 0)
}

// DB returns the connection pool the Store uses: the caller's for New, the
// one Open opened for Open, so that its limits can be tuned.
func (st *Store) DB() *sql.DB { return st.db }

// hooks are the test seams; zero values mean the real thing.
type hooks struct {
	now       func() time.Time
	dbNow     string // an SQL expression for the database's clock
	rand      io.Reader
	pruneWait func(time.Duration) <-chan time.Time
	pruned    func(n int64, err error)
}

func newStore(ctx context.Context, db *sql.DB, cfg Config, h hooks) (*Store, error) {
	if db == nil {
		return nil, errors.New("pgstore: New: db is nil")
	}
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	if h.dbNow != "" {
		set.dbNow = h.dbNow
	}
	opts := set.options
	st := &Store{
		Options: &opts,
		db:      db,
		cfg:     set,
		log:     set.logger,
		now:     h.now,
		rand:    h.rand,
		closed:  make(chan struct{}),
	}
	if st.log == nil {
		st.log = slog.New(discardHandler{})
	}
	if st.now == nil {
		st.now = time.Now
	}
	if st.rand == nil {
		st.rand = rand.Reader
	}
	if set.express {
		st.format, st.row = newExpressFormat(cfg.ExpressSecrets), expressRow{}
		for _, secret := range cfg.ExpressSecrets {
			st.handleKeys = append(st.handleKeys, handleKeyFor([]byte(secret)))
		}
	} else {
		for i := 0; i < len(set.keyPairs); i += 2 {
			st.handleKeys = append(st.handleKeys, handleKeyFor(set.keyPairs[i]))
		}
		st.format, st.row = newSecureCookieFormat(set.keyPairs), nativeRow{}
	}

	if err := st.setup(ctx); err != nil {
		st.stmts.close()
		return nil, err
	}
	if set.pruneInterval > 0 {
		st.startPruner(h)
	}
	if len(st.unindexed) > 0 {
		st.startIndexBuild(st.unindexed)
	}
	return st, nil
}

func (st *Store) setup(ctx context.Context) error {
	qctx, cancel := st.queryContext(ctx)
	defer cancel()
	// The first query doubles as the connectivity check and validates
	// TimeZone, which the statements below embed as a literal.
	//
	// Some drivers (lib/pq among them) ignore the context while they
	// handshake with a server that accepted the connection but does not
	// answer, so the probe runs aside and New returns when ctx ends. The
	// abandoned attempt ends when the driver gives up (lib/pq: at
	// connect_timeout, which Open sets).
	probe := make(chan error, 1)
	var standby, readOnly bool
	go func() {
		var zoned sql.NullString
		var dbNow float64
		err := st.db.QueryRowContext(qctx, "SELECT (now() AT TIME ZONE $1)::text, date_part('epoch', "+st.cfg.dbNow+"), "+
			"pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
			st.cfg.timeZone).Scan(&zoned, &dbNow, &standby, &readOnly)
		if err == nil {
			st.observeDBClock(dbNow)
		}
		probe <- err
	}()
	var err error
	select {
	case err = <-probe:
	case <-qctx.Done():
		err = qctx.Err()
	}
	if err != nil {
		// 22023 is how PostgreSQL refuses an unknown time zone; anything
		// else (refused, unknown database or role, bad password) is about
		// reaching the database.
		if sqlState(err) == "22023" {
			return fmt.Errorf("%w: Config.TimeZone %q: %w", ErrConfig, st.cfg.timeZone, err)
		}
		return fmt.Errorf("pgstore: connect to database: %w", err)
	}
	switch {
	case standby:
		// Sessions are read where they are written: a replica lags, and
		// a user who just signed in would look signed out there.
		return fmt.Errorf("%w: the database is a standby (read-only replica); point the store at the primary, "+
			"with target_session_attrs=read-write in a multi-host DSN (docs/production.md)", ErrReadOnly)
	case readOnly:
		return fmt.Errorf("%w: the connection is read-only (default_transaction_read_only is on for this role or database)", ErrReadOnly)
	}
	if !st.cfg.skipCreateTable {
		if err := st.ensureTable(qctx); err != nil {
			return err
		}
	} else if exists, err := st.tableExists(qctx, st.db); err != nil {
		return err
	} else if !exists {
		return fmt.Errorf("pgstore: table %s does not exist and Config.SkipCreateTable is set: create it with schema.sql", st.cfg.qualifiedTable())
	}
	if err := st.ensureSessText(qctx); err != nil {
		// Only Revoke needs the function: the store serves sessions
		// without it, and Revoke says what to run.
		st.sessTextErr = err
		st.log.WarnContext(ctx, "pgstore: Revoke and RevokeOthers will fail until the function exists", "err", err)
	}
	missing, err := st.checkKeyIndexes(qctx)
	if err != nil {
		return err
	}
	st.unindexed = missing
	if st.cfg.express {
		if err := st.ensureTombstones(qctx); err != nil {
			return err
		}
	} else if schema, complete, err := st.tombstonesExist(qctx, st.db); err == nil && complete {
		// A table an Express-mode store installed tombstones on, opened
		// here in native mode (the pgstore command does): Prune deletes
		// the expired ones too, as the Express-mode store's would.
		st.tomb = tombstones{schema: schema, name: tombstoneName(st.cfg.table)}
	}
	if err := st.checkExpireIndex(qctx); err != nil {
		return err
	}
	st.stmts.build(&st.cfg)
	if st.cfg.transactionPooler {
		return st.checkPooler(qctx)
	}
	return st.stmts.prepare(qctx, st.db)
}

// Close stops the background pruner and waits for it to exit, then releases
// the prepared statements. It closes the connection pool only when the Store
// was made by Open. Close is idempotent; later calls return the first
// result. Sessions cannot be loaded or saved after Close.
func (st *Store) Close() error {
	st.closeOnce.Do(func() {
		close(st.closed)
		if st.pruneStop != nil {
			st.pruneStop()
			<-st.pruneDone
		}
		if st.indexStop != nil {
			st.indexStop()
			<-st.indexDone
		}
		st.stmts.close()
		if st.ownsDB {
			if err := st.db.Close(); err != nil {
				st.closeErr = fmt.Errorf("pgstore: close database: %w", err)
			}
		}
		st.log.Info("pgstore: store closed", "table", st.cfg.qualifiedTable())
	})
	return st.closeErr
}

func (st *Store) isClosed() bool {
	select {
	case <-st.closed:
		return true
	default:
		return false
	}
}

// queryContext bounds ctx by Config.QueryTimeout.
func (st *Store) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if st.cfg.queryTimeout <= 0 {
		return ctx, func() {}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= st.cfg.queryTimeout {
		return ctx, func() {} // already bounded at least as tightly
	}
	return context.WithTimeoutCause(ctx, st.cfg.queryTimeout, errQueryTimeout)
}

// observeDBClock records the database's clock, read as epoch seconds just
// now.
func (st *Store) observeDBClock(dbNow float64) {
	st.dbOffset.Store(epochMicros(dbNow) - st.now().UnixMicro())
}

// dbNow is the database's clock as this process estimates it: its own
// clock moved by the offset last observed.
func (st *Store) dbNow() time.Time {
	return st.now().Add(time.Duration(st.dbOffset.Load()) * time.Microsecond)
}

// Get returns the session called name for this request, from the request's
// registry when it was already loaded. See New for what happens on errors.
func (st *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(st, name)
}

// New loads the session called name from the cookie in r, or returns a new
// session. It never returns a nil session.
//
// Without a cookie, or with one that fails verification (garbage, another
// key, another cookie name), it returns a new session and a nil error without
// touching the database. With a valid cookie it runs one query; when the row
// is missing or expired it returns a new session, which will get a new ID
// when saved: the ID the client sent is never reused. On a database error or
// a corrupt row it returns a new session and the error.
func (st *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	s := sessions.NewSession(st, name)
	*s.Options = st.options()
	s.IsNew = true

	value, found := st.format.find(r, name)
	if !found {
		return s, nil
	}
	id, current, ok := st.format.decode(name, value)
	if !ok {
		st.log.DebugContext(r.Context(), "pgstore: ignored a session cookie that failed verification", "cookie", name)
		return s, nil
	}
	l, err := st.load(r.Context(), id)
	if err != nil || l == nil {
		return s, err
	}
	l.oldKey = !current
	if err := st.apply(s, l); err != nil {
		// A row we cannot read is reported, and the request goes on with
		// an empty session. The row stays for inspection; it is never
		// overwritten because the new session gets a new ID.
		st.stats.errCorrupt.Add(1)
		s.Values = make(map[any]any)
		*s.Options = st.options()
		st.log.WarnContext(r.Context(), "pgstore: session row cannot be read", "session", logID(id), "err", err)
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err) // from a codec of the caller's
		}
		return s, err
	}
	st.remember(r, s, l)
	return s, nil
}

// loaded is what the store remembers about a session it read, to decide at
// Save whether anything needs writing.
type loaded struct {
	id     string    // the session ID the cookie carries
	raw    []byte    // sess as stored
	expire float64   // stored expire, epoch seconds (+Inf for 'infinity')
	dbNow  time.Time // the database's clock when the row was read
	meta   meta
	oldKey bool // the request's cookie was signed with a retired key
}

// load reads the row for id, or returns nil when it is missing or expired.
func (st *Store) load(ctx context.Context, id string) (*loaded, error) {
	if st.isClosed() {
		return nil, errClosed
	}
	l := &loaded{id: id}
	var dbNow float64
	st.stats.loads.Add(1)
	err := st.retry(ctx, func(ctx context.Context, on runner) error {
		return st.stmts.load.queryRow(ctx, on, st.sid(id)).Scan(&l.raw, &l.expire, &dbNow)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		st.log.DebugContext(ctx, "pgstore: session not found", "session", logID(id))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pgstore: load session: %w", err)
	}
	st.observeDBClock(dbNow)
	l.dbNow = time.UnixMicro(epochMicros(dbNow))
	// An expired row is as good as missing, until the pruner deletes it.
	if !alive(l.expire, dbNow) {
		st.log.DebugContext(ctx, "pgstore: session expired", "session", logID(id))
		return nil, nil
	}
	return l, nil
}

// sid is the key of id in the table.
func (st *Store) sid(id string) string {
	if st.cfg.hashIDs {
		return hashID(id)
	}
	return id
}

// apply fills s from the loaded row.
func (st *Store) apply(s *sessions.Session, l *loaded) error {
	if err := st.decode(l.raw, s.Values, &l.meta); err != nil {
		return err
	}
	if st.pastAbsoluteTimeout(l.meta.created, l.dbNow) {
		for k := range s.Values {
			delete(s.Values, k)
		}
		st.log.Debug("pgstore: session passed its absolute timeout", "session", logID(l.id))
		return nil // treated as gone: s stays new, with no values
	}
	if l.meta.hasMaxAge {
		// Another writer (Node, an older version) may have stored a
		// lifetime this store refuses to set: keep the session usable.
		s.Options.MaxAge = int(min(int64(max(l.meta.maxAge, 0)), MaxMaxAge))
	}
	if l.meta.cookie.partitioned {
		s.Options.Partitioned = true // Node's session asked for a partitioned cookie
	}
	s.ID = l.id
	s.IsNew = false
	return nil
}

// discardHandler is a slog.Handler that drops everything: a nil
// Config.Logger means silence.
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
