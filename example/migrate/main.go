// Command migrate copies the live sessions of antonlindstrom/pgstore (table
// http_sessions) into a pgstore table, under the same session IDs, so that
// nobody is logged out by the move.
//
//	go run ./example/migrate -dsn "$DATABASE_URL" -cookie-name session \
//		-hash-key "$SESSION_HASH_KEY" -block-key "$SESSION_BLOCK_KEY" -dry-run
//
// antonlindstrom/pgstore keeps a session's ID in the key column and its
// values in the data column, encoded by securecookie (gob, signed with the
// store's hash key and, with a block key, encrypted) under the cookie's
// name. The program verifies and decodes data with the keys it is given,
// writes each session in the sess format pgstore writes, keeps expires_on as
// the expiry, and never overwrites a row that is already in the target
// table, so it can be run again.
//
// Its cookies stay valid: pgstore accepts gob-encoded ID cookies signed with
// its KeyPairs, so give pgstore.Config.KeyPairs the same keys, in the same
// order, as the old store. See docs/migration.md.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/lib/pq" // the "postgres" driver, and pq.Array

	"github.com/pgsessions/pgstore"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a fatal error, or some rows failed
	exitUsage  = 2
)

// The gob names of the types, besides gob's built-in ones, that sessions
// commonly hold and JSON can represent. With -codec json, values of other
// named types cannot be decoded here: use -codec gob for them.
func init() {
	gob.Register(time.Time{})
	gob.Register(map[string]interface{}{})
	gob.Register([]interface{}{})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed command-line flags.
type options struct {
	dsn         string
	cookieNames []string
	hashKeys    [][]byte
	blockKeys   [][]byte
	fromTable   string
	fromSchema  string
	toTable     string
	schema      string
	codec       string
	timeZone    string
	batchSize   int
	dryRun      bool
}

// keyFlag collects a repeatable key flag.
type keyFlag struct {
	keys *[][]byte
}

func (k keyFlag) String() string { return "" }

func (k keyFlag) Set(s string) error {
	key, err := parseKey(s)
	if err != nil {
		return err
	}
	*k.keys = append(*k.keys, key)
	return nil
}

// stringsFlag collects a repeatable string flag.
type stringsFlag struct {
	values *[]string
}

func (f stringsFlag) String() string { return "" }

func (f stringsFlag) Set(s string) error {
	*f.values = append(*f.values, s)
	return nil
}

const usageText = `Usage: migrate -cookie-name NAME -hash-key KEY [-block-key KEY] [flags]

Copies the live sessions of antonlindstrom/pgstore's http_sessions table into
a pgstore table, keeping each session's ID, so that nobody is logged out.
Rows already in the target table are left alone, so it is safe to run again.

Keys are hex, or base64 (standard or URL alphabet, padded or not); prefix one
with "hex:", "base64:" or "text:" to say which (text: takes the characters as
they are, for keys made with []byte("...")). Give -hash-key and -block-key
once per key pair, newest first, as the old store got them; when some pairs
have a block key and others not, give -block-key "" for the ones without.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.dsn, "dsn", "", "the PostgreSQL `URL or key=value string` of the database holding both tables (default: $DATABASE_URL)")
	fs.Var(stringsFlag{&o.cookieNames}, "cookie-name", "the session (cookie) `name` the old store saved under; repeat it if the app used several")
	fs.Var(keyFlag{&o.hashKeys}, "hash-key", "a hash `key` of the old store; repeat it for rotated keys, newest first")
	fs.Var(keyFlag{&o.blockKeys}, "block-key", "the block (encryption) `key` of the pair, if any; repeat it once per -hash-key")
	fs.StringVar(&o.fromTable, "from-table", "http_sessions", "the old store's `table`")
	fs.StringVar(&o.fromSchema, "from-schema", "", "the old table's `schema`, when it differs from -schema")
	fs.StringVar(&o.toTable, "to-table", pgstore.DefaultTableName, "pgstore's `table` (Config.TableName); created when missing")
	fs.StringVar(&o.schema, "schema", "", "the `schema` of both tables (Config.SchemaName); default: the connection's search_path")
	fs.StringVar(&o.codec, "codec", "json", "the pgstore `codec` the application will use: json (JSONCodec) or gob (GobCodec)")
	fs.StringVar(&o.timeZone, "time-zone", pgstore.DefaultTimeZone, "the `zone` of pgstore's expire column (Config.TimeZone)")
	fs.IntVar(&o.batchSize, "batch", 500, "how many `rows` to read and insert at a time")
	fs.BoolVar(&o.dryRun, "dry-run", false, "decode and count, but write nothing (not even the target table)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case len(o.cookieNames) == 0:
		return o, errors.New("-cookie-name is required: the old store signed each row under the session's name")
	case len(o.hashKeys) == 0:
		return o, errors.New("-hash-key is required: the rows are signed with it")
	case len(o.blockKeys) > 0 && len(o.blockKeys) != len(o.hashKeys):
		return o, fmt.Errorf("%d -hash-key and %d -block-key flags: give one -block-key per -hash-key (an empty one for a pair without), or none", len(o.hashKeys), len(o.blockKeys))
	case o.codec != "json" && o.codec != "gob":
		return o, fmt.Errorf("-codec %q: use json or gob", o.codec)
	case o.batchSize < 1 || o.batchSize > 10000:
		return o, fmt.Errorf("-batch %d: use 1 to 10000", o.batchSize)
	case o.fromTable == "" || o.toTable == "":
		return o, errors.New("-from-table and -to-table must not be empty")
	}
	for i, key := range o.hashKeys {
		if len(key) == 0 {
			return o, fmt.Errorf("-hash-key #%d is empty", i+1)
		}
	}
	for i, key := range o.blockKeys {
		switch len(key) {
		case 0, 16, 24, 32:
		default:
			return o, fmt.Errorf("-block-key #%d is %d bytes; AES keys are 16, 24 or 32 bytes", i+1, len(key))
		}
	}
	if o.fromSchema == "" {
		o.fromSchema = o.schema
	}
	if o.dsn == "" {
		o.dsn = os.Getenv("DATABASE_URL")
	}
	return o, nil
}

// parseKey decodes a key given as hex or base64, or with an explicit
// "hex:", "base64:" or "text:" prefix. An empty string is no key.
func parseKey(s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, nil
	case strings.HasPrefix(s, "text:"):
		return []byte(s[len("text:"):]), nil
	case strings.HasPrefix(s, "hex:"):
		b, err := hex.DecodeString(s[len("hex:"):])
		if err != nil {
			return nil, fmt.Errorf("not hex: %w", err)
		}
		return b, nil
	case strings.HasPrefix(s, "base64:"):
		return decodeBase64(s[len("base64:"):])
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, errors.New(`neither hex nor base64; prefix a key used as plain text with "text:"`)
	}
	return b, nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return exitUsage
	}
	m := newMigrator(o, stdout)
	if err := m.open(ctx); err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return exitFailed
	}
	defer m.db.Close()
	res, err := m.migrate(ctx)
	res.print(stdout, o.dryRun)
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return exitFailed
	}
	if res.failed > 0 {
		return exitFailed
	}
	return exitOK
}

// migrator copies the rows.
type migrator struct {
	o      options
	out    io.Writer
	db     *sql.DB
	codecs []securecookie.Codec
	from   string // the source table, quoted
	to     string // the target table, quoted
}

func newMigrator(o options, out io.Writer) *migrator {
	pairs := make([][]byte, 0, 2*len(o.hashKeys))
	for i, hashKey := range o.hashKeys {
		var blockKey []byte // nil, not empty: securecookie treats an empty key as an AES key
		if i < len(o.blockKeys) && len(o.blockKeys[i]) > 0 {
			blockKey = o.blockKeys[i]
		}
		pairs = append(pairs, hashKey, blockKey)
	}
	codecs := securecookie.CodecsFromPairs(pairs...)
	for _, c := range codecs {
		sc := c.(*securecookie.SecureCookie)
		// The data column's timestamp is when the row was last saved;
		// expires_on decides whether it is live, so the timestamp must not
		// reject rows older than securecookie's 30 days. The old store may
		// have raised its length limit, so none applies here. The payload
		// is taken as raw gob, decoded (or not) below.
		sc.MaxAge(0)
		sc.MaxLength(0)
		sc.SetSerializer(securecookie.NopEncoder{})
	}
	return &migrator{
		o:      o,
		out:    out,
		codecs: codecs,
		from:   qualified(o.fromSchema, o.fromTable),
		to:     qualified(o.schema, o.toTable),
	}
}

func (m *migrator) open(ctx context.Context) error {
	db, err := sql.Open("postgres", withConnectTimeout(m.o.dsn))
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return fmt.Errorf("connect to database: %w", err)
	}
	m.db = db
	return nil
}

// withConnectTimeout adds connect_timeout=10 to dsn unless it has one:
// lib/pq would otherwise wait forever for a server that does not answer.
func withConnectTimeout(dsn string) string {
	if strings.Contains(dsn, "connect_timeout") {
		return dsn
	}
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("connect_timeout", "10")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn + " connect_timeout=10")
}

// result counts what happened to the rows.
type result struct {
	migrated, present, expired, failed, large int
	failures                                  []failure
}

type failure struct {
	id     int64 // the old table's id column: not a secret, unlike key
	reason string
}

// maxListed bounds how many failed rows are listed one by one; above
// summarizeAbove failures, the reasons are also counted.
const (
	maxListed      = 100
	summarizeAbove = 10
)

func (r *result) fail(id int64, reason string) {
	r.failed++
	r.failures = append(r.failures, failure{id, reason})
}

func (r result) print(w io.Writer, dryRun bool) {
	shown := r.failures
	if len(shown) > maxListed {
		shown = shown[:maxListed]
	}
	for _, f := range shown {
		fmt.Fprintf(w, "failed: row id %d: %s\n", f.id, f.reason)
	}
	if len(r.failures) > len(shown) {
		fmt.Fprintf(w, "failed: ... and %d more rows\n", len(r.failures)-len(shown))
	}
	if len(r.failures) > summarizeAbove {
		reasons := map[string]int{}
		for _, f := range r.failures {
			reasons[f.reason]++
		}
		keys := make([]string, 0, len(reasons))
		for k := range reasons {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "failed: %d rows: %s\n", reasons[k], k)
		}
	}
	if r.large > 0 {
		fmt.Fprintf(w, "note: %d sessions are larger than %d bytes (pgstore.DefaultMaxLength): "+
			"they load, but Save returns ErrTooLarge for them unless Config.MaxLength is raised\n", r.large, pgstore.DefaultMaxLength)
	}
	verb := "migrated"
	if dryRun {
		verb = "would migrate"
	}
	fmt.Fprintf(w, "%s %d, already present %d, skipped expired %d, failed %d\n", verb, r.migrated, r.present, r.expired, r.failed)
}

// row is one session ready for the target table.
type row struct {
	srcID  int64
	sid    string
	sess   string
	expire float64 // epoch seconds
}

func (m *migrator) migrate(ctx context.Context) (result, error) {
	var res result
	exists, err := m.tableExists(ctx, m.from)
	if err != nil {
		return res, err
	}
	if !exists {
		return res, fmt.Errorf("table %s does not exist (see -from-table, -from-schema and -schema)", m.from)
	}
	targetExists := true
	if m.o.dryRun {
		if targetExists, err = m.tableExists(ctx, m.to); err != nil {
			return res, err
		}
	} else if err := m.createTarget(ctx); err != nil {
		return res, err
	}

	// One cutoff for the whole run: rows expiring while it runs are still
	// copied, and pgstore judges them expired as it should.
	var cutoff time.Time
	if err := m.db.QueryRowContext(ctx, "SELECT now()").Scan(&cutoff); err != nil {
		return res, fmt.Errorf("read the server's clock: %w", err)
	}
	if err := m.db.QueryRowContext(ctx, "SELECT count(*) FROM "+m.from+
		" WHERE expires_on IS NULL OR expires_on <= $1", cutoff).Scan(&res.expired); err != nil {
		return res, fmt.Errorf("count expired rows of %s: %w", m.from, err)
	}

	query := "SELECT id, key, data, extract(epoch FROM created_on)::float8, extract(epoch FROM expires_on)::float8 FROM " +
		m.from + " WHERE expires_on > $1 AND id > $2 ORDER BY id LIMIT $3"
	last := int64(math.MinInt64)
	for {
		batch, read, lastID, err := m.readBatch(ctx, query, cutoff, last, &res)
		if err != nil {
			return res, err
		}
		if read == 0 {
			return res, nil
		}
		last = lastID
		if len(batch) > 0 {
			if err := m.write(ctx, batch, targetExists, &res); err != nil {
				return res, err
			}
		}
	}
}

// readBatch reads the next batch of live rows after id last and converts
// them. It returns the rows that converted, how many rows it read and the
// last id read; rows that fail to convert are recorded in res.
func (m *migrator) readBatch(ctx context.Context, query string, cutoff time.Time, last int64, res *result) (batch []row, read int, lastID int64, err error) {
	rows, err := m.db.QueryContext(ctx, query, cutoff, last, m.o.batchSize)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id            int64
			key, data     []byte
			created       sql.NullFloat64
			expiresOnSecs float64
		)
		if err := rows.Scan(&id, &key, &data, &created, &expiresOnSecs); err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
		}
		read++
		lastID = id
		sid, sess, err := m.convert(key, data, created)
		if err != nil {
			res.fail(id, err.Error())
			continue
		}
		if len(sess) > pgstore.DefaultMaxLength {
			res.large++
		}
		batch = append(batch, row{srcID: id, sid: sid, sess: sess, expire: expiresOnSecs})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
	}
	return batch, read, lastID, nil
}

// convert turns one old row into pgstore's sid and sess.
func (m *migrator) convert(key, data []byte, created sql.NullFloat64) (string, string, error) {
	sid := string(key)
	if !validID(sid) {
		return "", "", errors.New("the key column is not a session ID pgstore accepts (1 to 256 letters, digits, - or _)")
	}
	if len(data) == 0 {
		return "", "", errors.New("the data column is empty")
	}
	var raw []byte
	var err error
	for _, name := range m.o.cookieNames {
		if err = securecookie.DecodeMulti(name, string(data), &raw, m.codecs...); err == nil {
			break
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("%v (wrong -cookie-name or keys?)", err)
	}
	var object []byte
	switch m.o.codec {
	case "gob":
		// securecookie's gob of session.Values (a map[interface{}]interface{})
		// is exactly what pgstore.GobCodec decodes, so the bytes go in as
		// they are: the program needs none of the application's types.
		object = gobEnvelope(raw)
	default:
		values := make(map[any]any)
		if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&values); err != nil {
			return "", "", fmt.Errorf("decode the values: %v (use -codec gob for the application's own types)", err)
		}
		if object, err = (pgstore.JSONCodec{}).Encode(values); err != nil {
			return "", "", fmt.Errorf("%v (use -codec gob to keep such values)", err)
		}
	}
	createdAt := time.Now().Unix()
	if created.Valid && created.Float64 >= 1 {
		createdAt = int64(created.Float64)
	}
	return sid, sess(object, createdAt), nil
}

// gobEnvelope is pgstore.GobCodec's JSON object around gob bytes.
func gobEnvelope(raw []byte) []byte {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(raw))+10)
	out = append(out, `{"gob":"`...)
	out = base64.StdEncoding.AppendEncode(out, raw)
	return append(out, `"}`...)
}

// sess builds the sess column as pgstore writes it outside Express mode:
// its own member first, then the codec's members.
//
//	{"_pgstore":{"created":1764230400},"user":"alice"}
func sess(object []byte, created int64) string {
	var b strings.Builder
	b.WriteString(`{"_pgstore":{"created":`)
	b.WriteString(strconv.FormatInt(created, 10))
	b.WriteString("}")
	if inner := bytes.TrimSpace(object[1 : len(object)-1]); len(inner) > 0 {
		b.WriteByte(',')
		b.Write(inner)
	}
	b.WriteByte('}')
	return b.String()
}

// validID reports whether pgstore accepts id from a cookie.
func validID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// createTarget creates the target table through pgstore itself, so that it
// has exactly the shape and index New gives it, and checks TimeZone. The
// key is a throwaway: New needs one, and the table does not depend on it.
func (m *migrator) createTarget(ctx context.Context) error {
	st, err := pgstore.NewContext(ctx, m.db, pgstore.Config{
		KeyPairs:      [][]byte{securecookie.GenerateRandomKey(32)},
		TableName:     m.o.toTable,
		SchemaName:    m.o.schema,
		TimeZone:      m.o.timeZone,
		PruneInterval: -1,
	})
	if err != nil {
		return err
	}
	return st.Close()
}

func (m *migrator) tableExists(ctx context.Context, table string) (bool, error) {
	var ok bool
	if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up %s: %w", table, err)
	}
	return ok, nil
}

// write inserts batch, or in a dry run counts what would be inserted.
func (m *migrator) write(ctx context.Context, batch []row, targetExists bool, res *result) error {
	if m.o.dryRun {
		present := 0
		if targetExists {
			sids := make([]string, len(batch))
			for i, r := range batch {
				sids[i] = r.sid
			}
			if err := m.db.QueryRowContext(ctx, "SELECT count(*) FROM "+m.to+" WHERE sid = ANY($1)", pq.Array(sids)).Scan(&present); err != nil {
				return fmt.Errorf("look up existing sessions in %s: %w", m.to, err)
			}
		}
		res.present += present
		res.migrated += len(batch) - present
		return nil
	}
	inserted, err := m.insert(ctx, batch)
	if err == nil {
		res.migrated += inserted
		res.present += len(batch) - inserted
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	// One bad row fails the whole statement: find it by going row by row.
	for _, r := range batch {
		n, err := m.insert(ctx, []row{r})
		switch {
		case ctx.Err() != nil:
			return err
		case err != nil:
			res.fail(r.srcID, "insert: "+err.Error())
		case n == 1:
			res.migrated++
		default:
			res.present++
		}
	}
	return nil
}

// insert writes rows in one statement and returns how many were new.
func (m *migrator) insert(ctx context.Context, rows []row) (int, error) {
	var q strings.Builder
	q.WriteString("INSERT INTO " + m.to + " (sid, sess, expire) VALUES ")
	args := make([]any, 0, 3*len(rows)+1)
	args = append(args, m.o.timeZone)
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, to_timestamp($%d) AT TIME ZONE $1::text)", n+1, n+2, n+3)
		args = append(args, r.sid, r.sess, r.expire)
	}
	q.WriteString(" ON CONFLICT (sid) DO NOTHING")
	res, err := m.db.ExecContext(ctx, q.String(), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func qualified(schema, table string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if schema == "" {
		return q(table)
	}
	return q(schema) + "." + q(table)
}
