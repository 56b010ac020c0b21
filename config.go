package pgstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"
)

// Defaults applied by New for zero-valued Config fields.
const (
	// DefaultTableName is the table connect-pg-simple users usually configure.
	DefaultTableName = "user_sessions"
	// DefaultMaxAge is the cookie and idle lifetime: 30 days, in seconds.
	DefaultMaxAge = 30 * 24 * 60 * 60
	// DefaultPruneInterval is the mean time between pruning rounds.
	DefaultPruneInterval = 15 * time.Minute
	// DefaultMaxLength bounds the encoded sess column, in bytes.
	DefaultMaxLength = 64 << 10
	// DefaultTouchInterval is how stale a stored expiry may get before an
	// unchanged Save moves it.
	DefaultTouchInterval = time.Minute
	// DefaultBrowserSessionTTL is the server-side idle lifetime of a session
	// whose cookie has MaxAge 0 (a browser-session cookie).
	DefaultBrowserSessionTTL = 24 * time.Hour
	// DefaultQueryTimeout bounds each query the store sends.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultTimeZone is the zone in which expire is written and compared.
	DefaultTimeZone = "UTC"
)

// MaxMaxAge is the largest MaxAge a session may have: 100 years, in seconds.
// Larger values are refused, by New in Config.Options and by Save and
// Regenerate in a session's Options. It is an int64 because it exceeds a
// 32-bit int, where MaxAge cannot reach it.
const MaxMaxAge int64 = 3_155_760_000

// Config configures a Store. The zero value of every field means its
// documented default, so Config{KeyPairs: ...} alone is a production setup.
//
// A Config is read only by New; changing it afterwards has no effect.
type Config struct {
	// KeyPairs are securecookie hash/block key pairs, newest first: hash key
	// 1, block key 1, hash key 2, block key 2, ... The first pair signs (and,
	// with a block key, encrypts) new cookies; every pair is tried when
	// decoding, so keys can be rotated without logging anyone out.
	//
	// Hash keys must be at least 32 bytes; block keys, when not nil, must be
	// 16, 24 or 32 bytes (AES-128, -192 or -256). The cookie only carries a
	// session ID, so a block key is optional.
	//
	// Required unless ExpressSecrets is set; there is no default.
	//
	// To rotate keys, put the new hash key here and move the old one to
	// RetiredKeys. Beware gorilla's pair convention: KeyPairs{new, old}
	// makes old the block key of new, which logs everyone out; the pair
	// form of a rotation is KeyPairs{new, nil, old}.
	KeyPairs [][]byte

	// RetiredKeys are keys that still verify cookies but never sign new
	// ones, tried after KeyPairs. A session whose cookie was signed with a
	// retired key is re-signed with the current key the next time its
	// expiry is touched. Keep a retired key until every cookie it signed
	// has been re-signed or has expired: see docs/security.md. An entry
	// with neither key (read from an environment variable that is no
	// longer set) is ignored, so that dropping the retired key needs no
	// change of code.
	//
	// Default: none.
	RetiredKeys []KeyPair

	// ExpressSecrets switches the store to express-session's cookie and row
	// format, so a Go service and an Express service can share one table and
	// one cookie. The first secret signs; every secret verifies. When set,
	// KeyPairs is ignored and the codec must be the default JSON codec, and
	// New installs tombstones.sql's triggers, which keep a logout final
	// against Node's saves (docs/express.md).
	//
	// Default: nil (securecookie cookies, the store's own row format).
	ExpressSecrets []string

	// TableName is the sessions table. Default: "user_sessions".
	TableName string

	// SchemaName is the schema holding the table. Default: "" (unqualified,
	// resolved through the connection's search_path).
	SchemaName string

	// Options are the cookie defaults for new and loaded sessions; each
	// session gets its own copy. Default (when nil): Path "/", MaxAge 30 days,
	// HttpOnly, SameSite Lax, Secure.
	//
	// Secure is on by default because a session cookie sent over plain HTTP
	// can be stolen. Chrome and Firefox accept Secure cookies from
	// http://localhost; for plain-HTTP development elsewhere, pass Options
	// with Secure false.
	//
	// When Options is given it is used as given, so start from
	// DefaultOptions() and change what you need.
	Options *sessions.Options

	// SkipCreateTable stops New from creating the table (and its expire
	// index) when missing, the function pgstore_sess_text that Revoke
	// reads sess through, and in Express mode the tombstones of
	// tombstones.sql. Set it when they are managed by migrations (from
	// schema.sql and tombstones.sql); New then fails if any of them does
	// not exist. Default: false (create them).
	SkipCreateTable bool

	// PruneInterval is the mean time between background deletions of
	// expired rows. Each wait is jittered between 50% and 150% of it, and at
	// most one Store per table prunes at a time. Default: 15 minutes. A
	// negative value turns the background pruner off (call Prune yourself).
	PruneInterval time.Duration

	// MaxLength is the largest encoded sess value, in bytes, that Save will
	// write; larger sessions get ErrTooLarge and nothing is written, except
	// a session loaded larger than that, written back without its values
	// growing. Default: 65536 (64 KiB). A negative value means no limit.
	MaxLength int

	// TouchInterval is how far behind the stored expiry may fall before a
	// Save of an unchanged session moves it (and re-sends the cookie). A
	// larger value saves writes; a smaller one makes the idle timeout
	// more exact. Idle sessions may live up to TouchInterval less than
	// MaxAge after their last request. Default: 1 minute. A negative value
	// means every Save writes.
	TouchInterval time.Duration

	// AbsoluteTimeout ends every session this long after it was created,
	// however active it is. Regenerate starts the clock again. Default: 0
	// (off).
	AbsoluteTimeout time.Duration

	// BrowserSessionTTL is how long a session whose cookie has MaxAge 0 (a
	// browser-session cookie, deleted when the browser closes) lives on the
	// server after its last use. Default: 24 hours.
	BrowserSessionTTL time.Duration

	// QueryTimeout bounds the database work of each call (a load, a
	// Save, a Regenerate, one batch of a prune), retries after connection
	// errors included, on top of the request's own context. Default: 5
	// seconds. A negative value means no bound beyond the caller's
	// context.
	QueryTimeout time.Duration

	// HashIDs stores the SHA-256 of each session ID in the sid column instead
	// of the ID itself, so that a leaked backup or a read-only SQL injection
	// yields no usable session. It cannot be combined with ExpressSecrets
	// (Node looks rows up by the raw ID). Switching it on makes existing
	// sessions unreachable. Default: false.
	HashIDs bool

	// Logger receives lifecycle events (table creation, pruning, errors in
	// the background). Session IDs are never logged raw, only as a short
	// hash. Default: nil (silent).
	Logger *slog.Logger

	// Codec turns session values into the JSON object stored in sess.
	// Default: JSONCodec{}. Use GobCodec{} for gob-registered types, which
	// Node cannot read.
	Codec Codec

	// TransactionPooler makes the store work through a transaction-mode
	// pooler (PgBouncer with pool_mode=transaction, Supavisor's or Neon's
	// pooled endpoints, RDS Proxy), which may send each transaction to a
	// different server connection. The store then prepares nothing and
	// keeps no state in a server session: its statements go as one-shot
	// queries, and its locks last one transaction. The driver must send
	// each query in one round trip without naming it: Open sets lib/pq's
	// binary_parameters=yes; with pgx, put default_query_exec_mode=exec in
	// the DSN. New checks both and says what to change
	// (docs/production.md). Default: false (statements are prepared, one
	// round trip each with any driver settings).
	TransactionPooler bool

	// RecordClient makes the store keep, in each session's row, the
	// client's user agent and IP address as they were when the session was
	// created and at each Regenerate, for ListSessions ("where you're
	// signed in"). They are personal data: see docs/sessions.md. Default:
	// false (neither is stored).
	RecordClient bool

	// ClientIP returns the client's address for RecordClient. Behind a
	// proxy or load balancer, return the address it vouches for (the last
	// X-Forwarded-For entry it appended, for example); never trust the
	// header as the client sent it. Default: the host of
	// http.Request.RemoteAddr.
	ClientIP func(r *http.Request) string

	// IndexKeys are the session keys Revoke, RevokeOthers, ListSessions
	// and EndSession select by ("user_id"). For each that has no index,
	// New starts building the expression index those statements use, in
	// the background and concurrently (writes go on; the build waits for
	// the transactions open when it starts); Close stops it. With
	// SkipCreateTable New only logs a warning for each missing index
	// (docs/sessions.md). Default: none.
	IndexKeys []string

	// TimeZone is the zone in which the expire column (a timestamp without
	// time zone) is written and compared, whatever the connection's own
	// TimeZone setting. It must match the zone other writers of the table
	// use: connect-pg-simple writes in its connection's zone, which is UTC
	// on most servers. Default: "UTC".
	TimeZone string
}

// KeyPair is one securecookie key pair: a hash key that signs (at least 32
// bytes) and an optional block key that encrypts (16, 24 or 32 bytes, or
// nil for none).
type KeyPair struct {
	HashKey  []byte
	BlockKey []byte
}

// DefaultOptions returns a fresh copy of the cookie options a zero Config
// uses: Path "/", MaxAge 30 days, HttpOnly, SameSite Lax and Secure.
func DefaultOptions() *sessions.Options {
	return &sessions.Options{
		Path:     "/",
		MaxAge:   DefaultMaxAge,
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteLaxMode,
	}
}

// settings is a Config with defaults applied and checked.
type settings struct {
	table, schema     string
	options           sessions.Options
	pruneInterval     time.Duration // <= 0: off
	maxLength         int           // <= 0: no limit
	touchInterval     time.Duration // <= 0: always write
	absoluteTimeout   time.Duration
	browserSessionTTL time.Duration
	queryTimeout      time.Duration // <= 0: none
	hashIDs           bool
	skipCreateTable   bool
	logger            *slog.Logger
	codec             Codec
	byteStable        bool // codec writes equal values as equal bytes: JSONCodec
	timeZone          string
	express           bool
	transactionPooler bool
	recordClient      bool
	clientIP          func(*http.Request) string
	indexKeys         []string
	keyPairs          [][]byte // KeyPairs, then RetiredKeys as pairs
	dbNow             string   // the SQL expression for the database's clock
}

func (c *Config) settings() (settings, error) {
	s := settings{
		table:             c.TableName,
		schema:            c.SchemaName,
		pruneInterval:     c.PruneInterval,
		maxLength:         c.MaxLength,
		touchInterval:     c.TouchInterval,
		absoluteTimeout:   c.AbsoluteTimeout,
		browserSessionTTL: c.BrowserSessionTTL,
		queryTimeout:      c.QueryTimeout,
		hashIDs:           c.HashIDs,
		skipCreateTable:   c.SkipCreateTable,
		logger:            c.Logger,
		codec:             c.Codec,
		timeZone:          c.TimeZone,
		express:           len(c.ExpressSecrets) > 0,
		transactionPooler: c.TransactionPooler,
		recordClient:      c.RecordClient,
		clientIP:          c.ClientIP,
		indexKeys:         append([]string(nil), c.IndexKeys...),
		dbNow:             "now()",
	}
	if s.table == "" {
		s.table = DefaultTableName
	}
	if c.Options != nil {
		s.options = *c.Options
	} else {
		s.options = *DefaultOptions()
	}
	switch {
	case s.pruneInterval == 0:
		s.pruneInterval = DefaultPruneInterval
	case s.pruneInterval < 0:
		s.pruneInterval = 0
	}
	switch {
	case s.maxLength == 0:
		s.maxLength = DefaultMaxLength
	case s.maxLength < 0:
		s.maxLength = 0
	}
	switch {
	case s.touchInterval == 0:
		s.touchInterval = DefaultTouchInterval
	case s.touchInterval < 0:
		s.touchInterval = 0
	}
	if s.browserSessionTTL == 0 {
		s.browserSessionTTL = DefaultBrowserSessionTTL
	}
	switch {
	case s.queryTimeout == 0:
		s.queryTimeout = DefaultQueryTimeout
	case s.queryTimeout < 0:
		s.queryTimeout = 0
	}
	if s.codec == nil {
		s.codec = JSONCodec{}
	}
	_, s.byteStable = s.codec.(JSONCodec)
	if s.timeZone == "" {
		s.timeZone = DefaultTimeZone
	}

	if err := checkIdent("TableName", s.table); err != nil {
		return s, err
	}
	if s.schema != "" {
		if err := checkIdent("SchemaName", s.schema); err != nil {
			return s, err
		}
	}
	if s.options.MaxAge < 0 {
		return s, configError("Options", "MaxAge is negative: every Save would delete its session")
	}
	if int64(s.options.MaxAge) > MaxMaxAge {
		return s, configError("Options", fmt.Sprintf("MaxAge is %d seconds, more than MaxMaxAge (%d, 100 years)", s.options.MaxAge, MaxMaxAge))
	}
	if s.absoluteTimeout < 0 {
		return s, configError("AbsoluteTimeout", "must not be negative")
	}
	if s.browserSessionTTL < 0 {
		return s, configError("BrowserSessionTTL", "must not be negative")
	}
	for i, k := range s.indexKeys {
		if k == "" || strings.ContainsRune(k, 0) || !utf8.ValidString(k) {
			return s, configError(fmt.Sprintf("IndexKeys[%d]", i), "is empty, holds a NUL or is not valid UTF-8")
		}
	}
	if strings.ContainsRune(s.timeZone, 0) {
		return s, configError("TimeZone", "contains a NUL byte")
	}
	if s.express {
		if s.hashIDs {
			return s, configError("HashIDs", "cannot be combined with ExpressSecrets: Node looks sessions up by their raw ID")
		}
		if !s.byteStable {
			return s, configError("Codec", "must be JSONCodec with ExpressSecrets: Node reads sess as JSON values")
		}
		if s.codec.(JSONCodec).ReadGobRows {
			return s, configError("Codec", "JSONCodec.ReadGobRows cannot be combined with ExpressSecrets: Node's rows are never GobCodec's")
		}
		for i, secret := range c.ExpressSecrets {
			if secret == "" {
				return s, configError(fmt.Sprintf("ExpressSecrets[%d]", i), "is empty")
			}
		}
	} else {
		if err := checkKeyPairs(c.KeyPairs); err != nil {
			return s, err
		}
		s.keyPairs = append([][]byte(nil), c.KeyPairs...)
		if len(s.keyPairs)%2 == 1 {
			s.keyPairs = append(s.keyPairs, nil)
		}
		for i, k := range c.RetiredKeys {
			if len(k.HashKey) == 0 && len(k.BlockKey) == 0 {
				continue // an unset variable, once the retired key is dropped
			}
			if len(k.HashKey) < 32 {
				return s, configError(fmt.Sprintf("RetiredKeys[%d].HashKey", i), fmt.Sprintf("is %d bytes; it must be at least 32", len(k.HashKey)))
			}
			if err := checkBlockKey(fmt.Sprintf("RetiredKeys[%d].BlockKey", i), k.BlockKey); err != nil {
				return s, err
			}
			s.keyPairs = append(s.keyPairs, k.HashKey, k.BlockKey)
		}
	}
	return s, nil
}

// checkMaxAge refuses a session MaxAge the store cannot represent.
func checkMaxAge(maxAge int) error {
	if int64(maxAge) > MaxMaxAge {
		return fmt.Errorf("%w: session Options.MaxAge is %d seconds, more than MaxMaxAge (%d, 100 years)", ErrConfig, maxAge, MaxMaxAge)
	}
	return nil
}

func checkKeyPairs(pairs [][]byte) error {
	if len(pairs) == 0 {
		return configError("KeyPairs", "is empty: give at least one hash key (32 or 64 random bytes)")
	}
	for i, key := range pairs {
		field := fmt.Sprintf("KeyPairs[%d]", i)
		if i%2 == 0 {
			if len(key) < 32 {
				return configError(field, fmt.Sprintf("hash key is %d bytes; it must be at least 32", len(key)))
			}
			continue
		}
		if err := checkBlockKey(field, key); err != nil {
			return err
		}
	}
	return nil
}

func checkBlockKey(field string, key []byte) error {
	switch len(key) {
	case 0, 16, 24, 32:
		return nil
	default:
		return configError(field, fmt.Sprintf("block key is %d bytes; it must be 16, 24 or 32 (or nil for no encryption)", len(key)))
	}
}

func checkIdent(field, name string) error {
	switch {
	case name == "":
		return configError(field, "is empty")
	case strings.ContainsRune(name, 0):
		return configError(field, "contains a NUL byte")
	case len(name) > maxIdentLen:
		return configError(field, fmt.Sprintf("is %d bytes; PostgreSQL identifiers are at most %d", len(name), maxIdentLen))
	}
	return nil
}

// ErrConfig is wrapped by every error New returns for an invalid Config, and
// by the error Save and Regenerate return for session Options the store
// cannot honour (a MaxAge above MaxMaxAge).
var ErrConfig = errors.New("pgstore: invalid config")

func configError(field, problem string) error {
	return fmt.Errorf("%w: Config.%s %s", ErrConfig, field, problem)
}
