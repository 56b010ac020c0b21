package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/lib/pq"

	"github.com/pgsessions/pgstore"
)

var migrateCommand = &command{
	name:    "migrate",
	args:    "-cookie-name NAME -hash-key KEY [-block-key KEY] [flags]",
	summary: "copy the live sessions of antonlindstrom/pgstore into the table",
	doc: `Copies the live sessions of antonlindstrom/pgstore's http_sessions table into
the pgstore table (created when missing), keeping each session's ID, so that
nobody is logged out. Each row is verified with the old store's keys and
written by Store.Import, exactly as the application's store writes it. Rows
already in the table are left alone, so it is safe to run again.

Keys are hex, or base64 (standard or URL alphabet, padded or not); prefix one
with "hex:", "base64:" or "text:" to say which (text: takes the characters as
they are, for keys made with []byte("...")). Give -hash-key and -block-key
once per key pair, newest first, as the old store got them; when some pairs
have a block key and others not, give -block-key "" for the ones without.

The application must then use the same keys as pgstore.Config.KeyPairs, in
the same order, and the -codec, -table, -schema and -time-zone given here.
See docs/migration.md.
`,
	flags: migrateFlags,
}

// The gob names of the types, besides gob's built-in ones, that sessions
// commonly hold and JSON can represent. With -codec json, values of other
// named types cannot be decoded here: use -codec gob for them.
func init() {
	gob.Register(time.Time{})
	gob.Register(map[string]interface{}{})
	gob.Register([]interface{}{})
}

// migrateOptions are migrate's own flags.
type migrateOptions struct {
	cookieNames []string
	hashKeys    [][]byte
	blockKeys   [][]byte
	fromTable   string
	fromSchema  string
	codec       string
	maxLength   int
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

func migrateFlags(fs *flag.FlagSet, c *common) func(context.Context, io.Writer) error {
	var o migrateOptions
	fs.Var(stringsFlag{&o.cookieNames}, "cookie-name", "the session (cookie) `name` the old store saved under; repeat it if the app used several")
	fs.Var(keyFlag{&o.hashKeys}, "hash-key", "a hash `key` of the old store; repeat it for rotated keys, newest first")
	fs.Var(keyFlag{&o.blockKeys}, "block-key", "the block (encryption) `key` of the pair, if any; repeat it once per -hash-key")
	fs.StringVar(&o.fromTable, "from-table", "http_sessions", "the old store's `table`")
	fs.StringVar(&o.fromSchema, "from-schema", "", "the old table's `schema`, when it differs from -schema")
	fs.StringVar(&o.codec, "codec", "json", "the pgstore `codec` the application will use: json (JSONCodec) or gob (GobCodec)")
	fs.IntVar(&o.maxLength, "max-length", pgstore.DefaultMaxLength, "the largest sess, in `bytes`, to copy (Config.MaxLength; -1: no limit)")
	fs.IntVar(&o.batchSize, "batch", 500, "how many `rows` to read at a time")
	fs.BoolVar(&o.dryRun, "dry-run", false, "check and count, but write nothing to the tables")
	return func(ctx context.Context, stdout io.Writer) error {
		if err := o.check(); err != nil {
			return usageError{err}
		}
		if o.fromSchema == "" {
			o.fromSchema = c.schema
		}
		m := &migrator{o: o, common: c, codecs: oldCodecs(o), from: qualified(o.fromSchema, o.fromTable), to: qualified(c.schema, c.table)}
		res, err := m.run(ctx)
		if res.counted {
			res.print(stdout, o.dryRun)
		}
		if err == nil && res.failed > 0 {
			err = fmt.Errorf("%d rows failed", res.failed)
		}
		return err
	}
}

func (o *migrateOptions) check() error {
	switch {
	case len(o.cookieNames) == 0:
		return errors.New("-cookie-name is required: the old store signed each row under the session's name")
	case len(o.hashKeys) == 0:
		return errors.New("-hash-key is required: the rows are signed with it")
	case len(o.blockKeys) > 0 && len(o.blockKeys) != len(o.hashKeys):
		return fmt.Errorf("%d -hash-key and %d -block-key flags: give one -block-key per -hash-key (an empty one for a pair without), or none", len(o.hashKeys), len(o.blockKeys))
	case o.codec != "json" && o.codec != "gob":
		return fmt.Errorf("-codec %q: use json or gob", o.codec)
	case o.batchSize < 1 || o.batchSize > 10000:
		return fmt.Errorf("-batch %d: use 1 to 10000", o.batchSize)
	case o.fromTable == "":
		return errors.New("-from-table must not be empty")
	}
	for i, key := range o.hashKeys {
		if len(key) == 0 {
			return fmt.Errorf("-hash-key #%d is empty", i+1)
		}
	}
	for i, key := range o.blockKeys {
		switch len(key) {
		case 0, 16, 24, 32:
		default:
			return fmt.Errorf("-block-key #%d is %d bytes; AES keys are 16, 24 or 32 bytes", i+1, len(key))
		}
	}
	return nil
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

// oldCodecs are the old store's securecookie codecs, set to read its data
// column.
func oldCodecs(o migrateOptions) []securecookie.Codec {
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
	return codecs
}

// migrator copies the rows.
type migrator struct {
	o        migrateOptions
	common   *common
	codecs   []securecookie.Codec
	from, to string // the tables, quoted
	st       *pgstore.Store
	db       *sql.DB
}

// dryRunTable is the temporary table a dry run imports into.
const dryRunTable = "pgstore_migrate_dry_run"

// open opens the store the rows are imported through. A dry run imports
// into a temporary table of the same shape, which PostgreSQL drops when
// the connection closes, so that each row meets every check a real run
// makes while nothing is written to the tables. The pool then keeps that
// one connection: on any other, the table does not exist and the import
// fails rather than writing.
func (m *migrator) open(ctx context.Context) error {
	cfg := pgstore.Config{MaxLength: m.o.maxLength}
	if m.o.codec == "gob" {
		cfg.Codec = gobBytesCodec{}
	}
	if m.o.dryRun {
		cfg.SchemaName, cfg.TableName = "pg_temp", dryRunTable
	}
	st, err := m.common.open(ctx, true, cfg)
	if err != nil {
		return err
	}
	m.st, m.db = st, st.DB()
	if m.o.dryRun {
		m.db.SetMaxOpenConns(1)
		m.db.SetConnMaxIdleTime(0) // never closed for idleness, with its table
		var ok bool
		if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", "pg_temp."+dryRunTable).Scan(&ok); err != nil || !ok {
			st.Close()
			return fmt.Errorf("dry run: the temporary table is not on the pool's connection (%v)", err)
		}
	}
	return nil
}

// result counts what happened to the rows.
type result struct {
	migrated, present, expired, failed int
	failures                           []failure
	counted                            bool // the run got as far as counting rows: worth a summary
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
	// In the old table's order, whichever step refused a row.
	sort.SliceStable(r.failures, func(i, j int) bool { return r.failures[i].id < r.failures[j].id })
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
	verb := "migrated"
	if dryRun {
		verb = "would migrate"
	}
	fmt.Fprintf(w, "%s %d, already present %d, skipped expired %d, failed %d\n", verb, r.migrated, r.present, r.expired, r.failed)
}

// row is one live session of the old table, verified and decoded.
type row struct {
	srcID            int64
	sid              string
	values           map[any]any
	created, expires time.Time
}

func (m *migrator) run(ctx context.Context) (result, error) {
	var res result
	if err := m.open(ctx); err != nil {
		return res, err
	}
	defer m.st.Close()
	if exists, err := m.tableExists(ctx, m.from); err != nil {
		return res, err
	} else if !exists {
		return res, fmt.Errorf("table %s does not exist (see -from-table, -from-schema and -schema)", m.from)
	}
	targetExists := true
	if m.o.dryRun {
		var err error
		if targetExists, err = m.tableExists(ctx, m.to); err != nil {
			return res, err
		}
	}

	// One cutoff for the whole run: rows expiring while it runs are still
	// read; Import refuses them once expired, and they count as expired.
	var cutoff time.Time
	if err := m.db.QueryRowContext(ctx, "SELECT now()").Scan(&cutoff); err != nil {
		return res, fmt.Errorf("read the server's clock: %w", err)
	}
	if err := m.db.QueryRowContext(ctx, "SELECT count(*) FROM "+m.from+
		" WHERE expires_on IS NULL OR expires_on <= $1", cutoff).Scan(&res.expired); err != nil {
		return res, fmt.Errorf("count expired rows of %s: %w", m.from, err)
	}
	res.counted = true

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
		if err := m.write(ctx, batch, targetExists, &res); err != nil {
			return res, err
		}
	}
}

// readBatch reads the next batch of live rows after id last and decodes
// them. It returns the rows that decoded, how many rows it read and the
// last id read; rows that fail to decode are recorded in res.
func (m *migrator) readBatch(ctx context.Context, query string, cutoff time.Time, last int64, res *result) (batch []row, read int, lastID int64, err error) {
	rows, err := m.db.QueryContext(ctx, query, cutoff, last, m.o.batchSize)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id               int64
			key, data        []byte
			created          sql.NullFloat64
			expiresOnSeconds float64
		)
		if err := rows.Scan(&id, &key, &data, &created, &expiresOnSeconds); err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
		}
		read++
		lastID = id
		values, err := m.decode(data)
		if err != nil {
			res.fail(id, err.Error())
			continue
		}
		r := row{srcID: id, sid: string(key), values: values, expires: fromEpoch(expiresOnSeconds)}
		if created.Valid && created.Float64 >= 1 {
			r.created = time.Unix(int64(created.Float64), 0)
		}
		batch = append(batch, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("read %s: %w", m.from, err)
	}
	return batch, read, lastID, nil
}

func fromEpoch(sec float64) time.Time {
	return time.UnixMicro(int64(math.Round(sec * 1e6)))
}

// decode verifies the data column with the old keys and returns the
// session's values: decoded from gob for -codec json, or for -codec gob the
// gob bytes as they are (see gobBytesCodec).
func (m *migrator) decode(data []byte) (map[any]any, error) {
	if len(data) == 0 {
		return nil, errors.New("the data column is empty")
	}
	var raw []byte
	var err error
	for _, name := range m.o.cookieNames {
		if err = securecookie.DecodeMulti(name, string(data), &raw, m.codecs...); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%v (wrong -cookie-name or keys?)", err)
	}
	if m.o.codec == "gob" {
		return map[any]any{gobBytesKey{}: raw}, nil
	}
	values := make(map[any]any)
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&values); err != nil {
		return nil, fmt.Errorf("decode the values: %v (use -codec gob for the application's own types)", err)
	}
	return values, nil
}

func (m *migrator) tableExists(ctx context.Context, table string) (bool, error) {
	var ok bool
	if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up %s: %w", table, err)
	}
	return ok, nil
}

// write imports batch. A dry run first counts the sessions already in the
// target table, then imports the others into its temporary table.
func (m *migrator) write(ctx context.Context, batch []row, targetExists bool, res *result) error {
	present := map[string]bool{}
	if m.o.dryRun && targetExists && len(batch) > 0 {
		sids := make([]string, len(batch))
		for i, r := range batch {
			sids[i] = r.sid
		}
		rows, err := m.db.QueryContext(ctx, "SELECT sid FROM "+m.to+" WHERE sid = ANY($1)", pq.Array(sids))
		if err != nil {
			return fmt.Errorf("look up existing sessions in %s: %w", m.to, err)
		}
		for rows.Next() {
			var sid string
			if err := rows.Scan(&sid); err != nil {
				rows.Close()
				return fmt.Errorf("look up existing sessions in %s: %w", m.to, err)
			}
			present[sid] = true
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("look up existing sessions in %s: %w", m.to, err)
		}
	}
	for _, r := range batch {
		if present[r.sid] {
			res.present++
			continue
		}
		inserted, err := m.st.Import(ctx, r.sid, r.values, r.created, r.expires)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !r.expires.After(time.Now()):
			res.expired++ // expired since the run began
		case err != nil:
			res.fail(r.srcID, m.reason(err))
		case inserted:
			res.migrated++
		default:
			res.present++
		}
	}
	return nil
}

// reason is the report's text for a row Import refused, with advice.
func (m *migrator) reason(err error) string {
	switch {
	case errors.Is(err, pgstore.ErrEncode) && m.o.codec == "json":
		return err.Error() + " (use -codec gob to keep such values)"
	case errors.Is(err, pgstore.ErrTooLarge):
		return err.Error() + " (raise -max-length, and Config.MaxLength to match)"
	}
	return err.Error()
}

// gobBytesKey is the key under which migrate passes a session's gob bytes
// to gobBytesCodec.
type gobBytesKey struct{}

// gobBytesCodec is pgstore.GobCodec for values that are gob bytes already:
// securecookie's gob of session.Values (a map[interface{}]interface{}) is
// what GobCodec decodes, so the bytes go into its {"gob":"<base64>"} object
// as they are, and the program needs none of the application's types.
type gobBytesCodec struct{}

func (gobBytesCodec) Encode(values map[any]any) ([]byte, error) {
	raw, ok := values[gobBytesKey{}].([]byte)
	if !ok || len(values) != 1 {
		return nil, fmt.Errorf("%w: gobBytesCodec holds gob bytes only", pgstore.ErrEncode)
	}
	return json.Marshal(struct {
		Gob []byte `json:"gob"`
	}{raw})
}

func (gobBytesCodec) Decode(data []byte, values map[any]any) error {
	return pgstore.GobCodec{}.Decode(data, values)
}
