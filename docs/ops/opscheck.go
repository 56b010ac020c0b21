//go:build ignore

// Command opscheck runs the checks behind docs/operations.md and
// docs/security.md that need the store itself rather than psql, and runs the
// psql scripts of docs/ops. Each check works in a schema with a random name
// that it drops afterwards (traffic keeps its schema for monitor.sql and
// prints its name; drop it by hand), so runs on a shared server do not
// collide.
//
//	go run docs/ops/opscheck.go [-dsn URL] hostcookie
//	go run docs/ops/opscheck.go [-dsn URL] rotation
//	go run docs/ops/opscheck.go [-dsn URL] revokeothers
//	go run docs/ops/opscheck.go [-dsn URL] lockkey
//	go run docs/ops/opscheck.go [-dsn URL] prepared
//	go run docs/ops/opscheck.go [-dsn URL] prunerole
//	go run docs/ops/opscheck.go [-dsn URL] partition
//	go run docs/ops/opscheck.go [-dsn URL] traffic
//	go run docs/ops/opscheck.go [-dsn URL] [-rows N] scripts
//
// The DSN defaults to DATABASE_URL, else postgres://root@127.0.0.1:5432/test.
// scripts needs psql on PATH and runs from the repository's root.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/sessions"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lib/pq"

	"github.com/pgsessions/pgstore"
)

var (
	dsnFlag    = flag.String("dsn", "", "database URL (default: DATABASE_URL, else postgres://root@127.0.0.1:5432/test)")
	driverFlag = flag.String("driver", "postgres", "database/sql driver: postgres (lib/pq) or pgx")
	schemaFlag = flag.String("schema", "", "traffic: the schema to create and leave behind (default: pgstore_ops_monitor_ and a random suffix)")
	rowsFlag   = flag.Int("rows", 20000, "scripts: rows for explain.sql and size.sql (the docs' figures use 1000000)")
)

func main() {
	flag.Parse()
	if *dsnFlag == "" {
		*dsnFlag = os.Getenv("DATABASE_URL")
	}
	if *dsnFlag == "" {
		*dsnFlag = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	}
	checks := map[string]func() error{
		"hostcookie":   hostCookie,
		"rotation":     rotation,
		"revokeothers": revokeOthers,
		"lockkey":      lockKey,
		"prepared":     prepared,
		"prunerole":    pruneRole,
		"partition":    partition,
		"traffic":      traffic,
		"scripts":      scripts,
	}
	check := checks[flag.Arg(0)]
	if check == nil {
		log.Fatalf("usage: opscheck [-dsn URL] hostcookie|rotation|revokeothers|lockkey|prepared|prunerole|partition|traffic|scripts")
	}
	if err := check(); err != nil {
		log.Fatalf("%s: FAIL: %v", flag.Arg(0), err)
	}
	fmt.Printf("%s: ok\n", flag.Arg(0))
}

func open(driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		log.Fatalf("connect: %v", err)
	}
	return db
}

// randomName is prefix and a random suffix.
func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s_%x", prefix, b)
}

// scratch creates a schema with a random name and returns a function that
// drops it.
func scratch(db *sql.DB, prefix string) (string, func()) {
	schema := randomName(prefix)
	if _, err := db.Exec(`CREATE SCHEMA "` + schema + `"`); err != nil {
		log.Fatal(err)
	}
	return schema, func() {
		if _, err := db.Exec(`DROP SCHEMA "` + schema + `" CASCADE`); err != nil {
			log.Printf("drop schema %s: %v", schema, err)
		}
	}
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func newRequest(cookies ...*http.Cookie) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.example/", nil)
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// login saves a new session holding values and returns its cookie.
func login(st *pgstore.Store, name string, values map[string]any) (*http.Cookie, error) {
	r := newRequest()
	s, err := st.Get(r, name)
	if err != nil {
		return nil, err
	}
	for k, v := range values {
		s.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err != nil {
		return nil, err
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, errors.New("no cookie set")
}

// hostCookie: a session cookie named with the __Host- prefix is set with
// the attributes the prefix demands and read back; the signature covers the
// name, so renaming the cookie logs everyone out.
func hostCookie() error {
	db := open("postgres", *dsnFlag)
	defer db.Close()
	schema, drop := scratch(db, "pgstore_ops_check")
	defer drop()
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return err
	}
	defer st.Close()

	const name = "__Host-session"
	r := newRequest()
	s, err := st.Get(r, name)
	if err != nil {
		return err
	}
	s.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err != nil {
		return err
	}
	header := w.Header().Get("Set-Cookie")
	fmt.Printf("Set-Cookie: %s\n", header)
	for _, want := range []string{name + "=", "Path=/;", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(header, want) {
			return fmt.Errorf("Set-Cookie lacks %q", want)
		}
	}
	if strings.Contains(header, "Domain=") {
		return errors.New("Set-Cookie has a Domain: browsers reject __Host- cookies with one")
	}
	c := w.Result().Cookies()[0]

	s2, err := st.Get(newRequest(c), name)
	if err != nil || s2.IsNew || s2.Values["user"] != "alice" {
		return fmt.Errorf("read back: new %v, values %v, err %v", s2.IsNew, s2.Values, err)
	}
	fmt.Println("read back under __Host-session: user =", s2.Values["user"])

	renamed := &http.Cookie{Name: "session", Value: c.Value}
	s3, err := st.Get(newRequest(renamed), "session")
	if err != nil || !s3.IsNew {
		return fmt.Errorf("the same value under another name loaded a session (new %v, err %v)", s3.IsNew, err)
	}
	fmt.Println("the same value under the name \"session\": rejected (new, empty session)")
	return nil
}

// rotation: after a key rotation, a touch re-sends the cookie signed with
// the new key, for a cookie with a MaxAge and for a browser-session cookie
// (MaxAge 0) alike, so an old key can go once every session that could carry
// it has been touched or has expired. And the trap: {newHash, oldHash} makes
// the old key the new pair's block key, and old cookies stop verifying.
func rotation() error {
	db := open("postgres", *dsnFlag)
	defer db.Close()
	schema, drop := scratch(db, "pgstore_ops_check")
	defer drop()
	oldKey, newKey := randomKey(), randomKey()
	oldStore, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{oldKey}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return err
	}
	defer oldStore.Close()
	// TouchInterval -1: every Save touches, standing in for a request that
	// comes TouchInterval or more after the last write.
	rotated, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{newKey, nil, oldKey}, SchemaName: schema,
		PruneInterval: -1, TouchInterval: -1})
	if err != nil {
		return err
	}
	defer rotated.Close()
	newOnly, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{newKey}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return err
	}
	defer newOnly.Close()

	// {newHash, nil, oldHash} is gorilla's pair convention; with the library's
	// RetiredKeys the same is KeyPairs {newHash}, RetiredKeys {{HashKey: oldHash}}.
	trap, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{newKey, oldKey}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return fmt.Errorf("New with {newHash, oldHash} (32-byte keys): %w", err)
	}
	defer trap.Close()

	for _, maxAge := range []int{pgstore.DefaultMaxAge, 0} {
		r := newRequest()
		s, _ := oldStore.Get(r, "session")
		s.Values["user"] = "alice"
		s.Options.MaxAge = maxAge
		w := httptest.NewRecorder()
		if err := oldStore.Save(r, w, s); err != nil {
			return err
		}
		oldCookie := w.Result().Cookies()[0]
		if _, s := getSession(newOnly, oldCookie); s == nil || !s.IsNew {
			return errors.New("a store with only the new key read an old-key cookie")
		}
		if _, s := getSession(trap, oldCookie); s == nil || !s.IsNew {
			return errors.New("a store configured {newHash, oldHash} read an old-key cookie")
		}
		fmt.Printf("MaxAge %d: a store configured {newHash, oldHash} gives the old-key cookie a new, empty session (logged out)\n", maxAge)
		r, s = getSession(rotated, oldCookie)
		if s == nil || s.IsNew {
			return errors.New("the rotated store did not read the old-key cookie")
		}
		w = httptest.NewRecorder()
		if err := rotated.Save(r, w, s); err != nil {
			return err
		}
		cookies := w.Result().Cookies()
		if len(cookies) == 0 {
			fmt.Printf("MaxAge %d: the touch sent no cookie; the browser keeps the old-key one\n", maxAge)
			continue
		}
		if _, s := getSession(newOnly, cookies[0]); s == nil || s.IsNew || s.Values["user"] != "alice" {
			return errors.New("the re-sent cookie does not verify with the new key alone")
		}
		fmt.Printf("MaxAge %d: the touch re-sent the cookie, signed with the new key\n", maxAge)
	}
	return nil
}

// revokeOthers: "sign out everywhere else" is RevokeOthers, which deletes
// every session of the user but the current one in one statement.
func revokeOthers() error {
	db := open("postgres", *dsnFlag)
	defer db.Close()
	schema, drop := scratch(db, "pgstore_ops_check")
	defer drop()
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return err
	}
	defer st.Close()
	// Called through an interface so that this file builds against a
	// pgstore without RevokeOthers and says so, rather than failing to
	// compile every other check.
	ro, ok := any(st).(interface {
		RevokeOthers(ctx context.Context, key string, value any, keep *sessions.Session) (int64, error)
	})
	if !ok {
		return errors.New("this pgstore has no (*Store).RevokeOthers(ctx, key, value, keep)")
	}
	var others []*http.Cookie
	for i := 0; i < 3; i++ {
		c, err := login(st, "session", map[string]any{"user_id": 42})
		if err != nil {
			return err
		}
		others = append(others, c)
	}
	bob, err := login(st, "session", map[string]any{"user_id": 7})
	if err != nil {
		return err
	}
	current, err := login(st, "session", map[string]any{"user_id": 42})
	if err != nil {
		return err
	}
	r, s := getSession(st, current)
	n, err := ro.RevokeOthers(r.Context(), "user_id", 42, s)
	if err != nil {
		return err
	}
	if n != int64(len(others)) {
		return fmt.Errorf("RevokeOthers deleted %d sessions, want %d", n, len(others))
	}
	if _, s := getSession(st, current); s == nil || s.IsNew || s.Values["user_id"] != 42 {
		return errors.New("the current session was revoked")
	}
	for _, c := range others {
		if _, s := getSession(st, c); s == nil || !s.IsNew {
			return errors.New("another session of the user still loads")
		}
	}
	if _, s := getSession(st, bob); s == nil || s.IsNew {
		return errors.New("another user's session was revoked")
	}
	fmt.Printf("RevokeOthers deleted the user's %d other sessions; the current one and the other user's stay\n", n)
	return nil
}

// sqlLockKey is the SQL form of the store's prune lock key (schema.go,
// lockKey), as docs/operations.md gives it.
const sqlLockKey = `SELECT ('x' || encode(substring(sha256(
  convert_to('pgstore', 'UTF8') || '\x00'::bytea || convert_to('prune', 'UTF8') || '\x00'::bytea ||
  convert_to($1, 'UTF8') || '\x00'::bytea || convert_to($2, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint`

// goLockKey repeats schema.go's lockKey.
func goLockKey(schema, table string) int64 {
	sum := sha256.Sum256([]byte("pgstore\x00prune\x00" + schema + "\x00" + table))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// syncBuffer collects log output from the pruner goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lockKey: the SQL formula gives the key the store locks, and while another
// session holds it the background pruner skips its rounds.
func lockKey() error {
	db := open("postgres", *dsnFlag)
	defer db.Close()
	schema, drop := scratch(db, "pgstore_ops_check")
	defer drop()

	for _, c := range [][2]string{{"", "user_sessions"}, {schema, "user_sessions"}, {"app", "web_sessions"}} {
		var fromSQL int64
		if err := db.QueryRow(sqlLockKey, c[0], c[1]).Scan(&fromSQL); err != nil {
			return err
		}
		fmt.Printf("schema %q table %q: key %d (SQL) %d (Go)\n", c[0], c[1], fromSQL, goLockKey(c[0], c[1]))
		if fromSQL != goLockKey(c[0], c[1]) {
			return errors.New("SQL and Go keys differ")
		}
	}

	ctx := context.Background()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema,
		PruneInterval: 40 * time.Millisecond, Logger: logger})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := db.Exec(`INSERT INTO "` + schema + `".user_sessions SELECT 'x' || g, '{}', now() AT TIME ZONE 'UTC' - interval '1 hour' FROM generate_series(1, 5) g`); err != nil {
		return err
	}
	var key int64
	if err := db.QueryRow(sqlLockKey, schema, "user_sessions").Scan(&key); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return err
	}
	time.Sleep(600 * time.Millisecond)
	var holder int
	err = db.QueryRow(`SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1
		AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 AND l.granted`, key).Scan(&holder)
	if err != nil {
		return fmt.Errorf("pg_locks does not show the held lock: %v", err)
	}
	var left int
	db.QueryRow(`SELECT count(*) FROM "` + schema + `".user_sessions`).Scan(&left)
	skipped := strings.Count(logs.String(), "another store is pruning")
	fmt.Printf("lock held by pid %d (found through pg_locks): %d rounds skipped, %d expired rows left\n", holder, skipped, left)
	if skipped == 0 || left != 5 || strings.Contains(logs.String(), "pruned expired sessions") {
		return fmt.Errorf("the pruner did not skip:\n%s", logs.String())
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
		return err
	}
	time.Sleep(600 * time.Millisecond)
	db.QueryRow(`SELECT count(*) FROM "` + schema + `".user_sessions`).Scan(&left)
	fmt.Printf("after unlock: %d expired rows left\n", left)
	if left != 0 {
		return fmt.Errorf("the pruner did not prune after unlock:\n%s", logs.String())
	}
	return nil
}

// prepared: the statements a pooled connection holds after the store has
// used it (one connection, so every statement ran on it).
func prepared() error {
	for _, driver := range []string{"postgres", "pgx"} {
		db := open(driver, *dsnFlag)
		db.SetMaxOpenConns(1)
		schema, drop := scratch(db, "pgstore_ops_check")
		st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, PruneInterval: -1})
		if err != nil {
			return err
		}
		c, err := login(st, "session", map[string]any{"user_id": 1})
		if err != nil {
			return err
		}
		r := newRequest(c)
		s, err := st.Get(r, "session")
		if err != nil {
			return err
		}
		s.Values["n"] = 1
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			return err
		}
		if err := st.Regenerate(r, httptest.NewRecorder(), s); err != nil {
			return err
		}
		if _, err := st.Revoke(context.Background(), "user_id", 1); err != nil {
			return err
		}
		if _, err := st.Prune(context.Background()); err != nil {
			return err
		}
		rows, err := db.Query(`SELECT name, left(regexp_replace(statement, '\s+', ' ', 'g'), 70) FROM pg_prepared_statements ORDER BY prepare_time`)
		if err != nil {
			return err
		}
		n := 0
		fmt.Printf("%s: statements prepared on the pool's one connection:\n", driver)
		for rows.Next() {
			var name, stmt string
			rows.Scan(&name, &stmt)
			fmt.Printf("  %-14s %s\n", name, stmt)
			n++
		}
		rows.Close()
		fmt.Printf("  (%d)\n", n)
		st.Close()
		drop()
		db.Close()
	}
	return nil
}

// pruneRole: a role with SELECT, UPDATE and DELETE (no INSERT, no CREATE)
// can make a Store and Prune. Needs a superuser DSN and a server that lets
// the new role connect without a password; creates and drops the role.
func pruneRole() error {
	admin := open("postgres", *dsnFlag)
	defer admin.Close()
	schema, drop := scratch(admin, "pgstore_ops_check")
	defer drop()
	role := schema + "_pruner"
	for _, q := range []string{
		`CREATE ROLE "` + role + `" LOGIN`,
		`CREATE TABLE "` + schema + `".user_sessions ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"))`,
		`CREATE INDEX ON "` + schema + `".user_sessions (expire)`,
		`INSERT INTO "` + schema + `".user_sessions SELECT 'x' || g, '{}', now() AT TIME ZONE 'UTC' - interval '1 hour' FROM generate_series(1, 1500) g`,
		`GRANT USAGE ON SCHEMA "` + schema + `" TO "` + role + `"`,
		`GRANT SELECT, UPDATE, DELETE ON "` + schema + `".user_sessions TO "` + role + `"`,
	} {
		if _, err := admin.Exec(q); err != nil {
			return fmt.Errorf("%s: %v", q, err)
		}
	}
	defer admin.Exec(`DROP OWNED BY "` + role + `"; DROP ROLE "` + role + `"`)
	// The function Revoke reads sess through, made by a store of a role
	// that may create it (as schema.sql would).
	adminStore, err := pgstore.New(admin, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return fmt.Errorf("New as the admin: %w", err)
	}
	adminStore.Close()
	u, err := url.Parse(*dsnFlag)
	if err != nil || u.Scheme == "" {
		return errors.New("prunerole needs a URL DSN")
	}
	u.User = url.User(role)
	db := open("postgres", u.String())
	defer db.Close()
	for _, skip := range []bool{true, false} {
		st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, SkipCreateTable: skip, PruneInterval: -1})
		if err != nil {
			return fmt.Errorf("New with SkipCreateTable %v: %w", skip, err)
		}
		n, err := st.Prune(context.Background())
		st.Close()
		if err != nil {
			return err
		}
		fmt.Printf("role with SELECT, UPDATE, DELETE, SkipCreateTable %v: New ok, Prune deleted %d\n", skip, n)
	}
	return nil
}

// partition: the store, unchanged, on hash- and range-partitioned tables
// made by hand (SkipCreateTable), and two concurrent saves of one session.
func partition() error {
	db := open(*driverFlag, *dsnFlag)
	defer db.Close()
	schema, drop := scratch(db, "pgstore_ops_check")
	defer drop()
	q := func(s string) string { return strings.ReplaceAll(s, "S.", `"`+schema+`".`) }
	ddl := []string{
		`CREATE TABLE S.by_sid (sid varchar NOT NULL COLLATE "default", sess json NOT NULL, expire timestamp(6) NOT NULL, PRIMARY KEY (sid)) PARTITION BY HASH (sid)`,
		`CREATE INDEX ON S.by_sid (expire)`,
		`CREATE TABLE S.by_expire (sid varchar NOT NULL COLLATE "default", sess json NOT NULL, expire timestamp(6) NOT NULL, PRIMARY KEY (sid, expire)) PARTITION BY RANGE (expire)`,
		`CREATE INDEX ON S.by_expire (expire)`,
	}
	for i := 0; i < 4; i++ {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE S.by_sid_%d PARTITION OF S.by_sid FOR VALUES WITH (MODULUS 4, REMAINDER %d)`, i, i))
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for d := -3; d < 100; d++ {
		from := today.AddDate(0, 0, d)
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE S.by_expire_%s PARTITION OF S.by_expire FOR VALUES FROM ('%s') TO ('%s')`,
			from.Format("20060102"), from.Format("2006-01-02"), from.AddDate(0, 0, 1).Format("2006-01-02")))
	}
	for _, stmt := range ddl {
		if _, err := db.Exec(q(stmt)); err != nil {
			return fmt.Errorf("%s: %v", stmt, err)
		}
	}
	for _, table := range []string{"by_sid", "by_expire"} {
		fmt.Printf("%s (%s):\n", table, *driverFlag)
		// Without SkipCreateTable first: it creates the function Revoke
		// reads sess through, which New with SkipCreateTable requires.
		st2, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, TableName: table, PruneInterval: -1})
		if err != nil {
			return fmt.Errorf("New without SkipCreateTable on an existing partitioned table: %v", err)
		}
		st2.Close()
		st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, TableName: table,
			SkipCreateTable: true, PruneInterval: -1})
		if err != nil {
			return fmt.Errorf("New with SkipCreateTable: %v", err)
		}
		step := func(what string, err error) error {
			if err != nil {
				return fmt.Errorf("%s: %s: %w", table, what, err)
			}
			fmt.Printf("  %-58s ok\n", what)
			return nil
		}
		c, err := login(st, "session", map[string]any{"user_id": 7, "n": 0})
		if err := step("login (insert)", err); err != nil {
			return err
		}
		r := newRequest(c)
		s, err := st.Get(r, "session")
		if err == nil && (s.IsNew || s.Values["user_id"] != 7) {
			err = errors.New("session did not load")
		}
		if err := step("Get (load)", err); err != nil {
			return err
		}
		s.Values["n"] = 1
		if err := step("Save, values changed (update of sess)", st.Save(r, httptest.NewRecorder(), s)); err != nil {
			return err
		}
		s.Options.MaxAge = 60 * 24 * 3600 // remember me: expire moves 30 days on
		if err := step("Save, MaxAge 30 -> 60 days (update moving expire)", st.Save(r, httptest.NewRecorder(), s)); err != nil {
			return err
		}
		w := httptest.NewRecorder()
		if err := step("Regenerate (delete + insert in one statement)", st.Regenerate(r, w, s)); err != nil {
			return err
		}
		fresh := w.Result().Cookies()[0]
		if _, s := getSession(st, fresh); s == nil || s.Values["n"] != 1 {
			return fmt.Errorf("%s: regenerated session did not load", table)
		}
		n, err := st.Revoke(context.Background(), "user_id", 7)
		if err == nil && n != 1 {
			err = fmt.Errorf("revoked %d, want 1", n)
		}
		if err := step("Revoke", err); err != nil {
			return err
		}
		if _, err := db.Exec(q(`INSERT INTO S.` + table + ` SELECT 'old' || g, '{}', now() AT TIME ZONE 'UTC' - interval '1 hour' FROM generate_series(1, 2500) g`)); err != nil {
			return err
		}
		n, err = st.Prune(context.Background())
		if err == nil && n != 2500 {
			err = fmt.Errorf("pruned %d, want 2500", n)
		}
		if err := step("Prune (2,500 expired rows, 3 batches)", err); err != nil {
			return err
		}
		c, _ = login(st, "session", map[string]any{"user_id": 8})
		r, s = getSession(st, c)
		s.Options.MaxAge = -1
		if err := step("logout (delete)", st.Save(r, httptest.NewRecorder(), s)); err != nil {
			return err
		}

		// Two requests on one session: the first holds the row in an open
		// transaction that moves its expire by two days (a touch); the
		// second Saves meanwhile and waits for it.
		c, _ = login(st, "session", map[string]any{"user_id": 9, "n": 0})
		r, s = getSession(st, c)
		id := s.ID
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(q(`UPDATE S.`+table+` SET expire = expire + interval '2 days' WHERE sid = $1`), id); err != nil {
			tx.Rollback()
			return err
		}
		done := make(chan error, 1)
		go func() {
			s.Values["n"] = 2
			s.Options.MaxAge = 90 * 24 * 3600
			done <- st.Save(r, httptest.NewRecorder(), s)
		}()
		time.Sleep(300 * time.Millisecond)
		if err := tx.Commit(); err != nil {
			return err
		}
		err = <-done
		fmt.Printf("  %-58s %v\n", "Save while another transaction moves the row:", errOrOK(err))
		st.Close()
	}
	return nil
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return "ERROR " + err.Error()
}

func getSession(st *pgstore.Store, c *http.Cookie) (*http.Request, *sessions.Session) {
	r := newRequest(c)
	s, err := st.Get(r, c.Name)
	if err != nil {
		return r, nil
	}
	return r, s
}

// traffic leaves a table in a schema of its own (pgstore_ops_monitor_ and a
// random suffix, or -schema) with live, expired and deleted sessions, for
// docs/ops/monitor.sql.
func traffic() error {
	schema := *schemaFlag
	if schema == "" {
		schema = randomName("pgstore_ops_monitor")
	}
	if err := fillTraffic(schema); err != nil {
		return err
	}
	fmt.Printf("left schema %s: 1500 live sessions, 300 expired\n", schema)
	fmt.Printf("watch it:  psql -X -f docs/ops/monitor.sql -v schema=%s -v table=user_sessions -v store_schema=%s -v zone=UTC\n", schema, schema)
	fmt.Printf("then drop: DROP SCHEMA \"%s\" CASCADE\n", schema)
	return nil
}

// fillTraffic creates schema and fills a sessions table in it through the
// store.
func fillTraffic(schema string) error {
	db := open(*driverFlag, *dsnFlag)
	defer db.Close()
	// No DROP first: a schema of that name may be someone else's run.
	if _, err := db.Exec(`CREATE SCHEMA "` + strings.ReplaceAll(schema, `"`, `""`) + `"`); err != nil {
		return err
	}
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{randomKey()}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		return err
	}
	defer st.Close()
	var cookies []*http.Cookie
	for i := 0; i < 2000; i++ {
		c, err := login(st, "session", map[string]any{"user_id": i % 500, "csrf": fmt.Sprintf("%032d", i)})
		if err != nil {
			return err
		}
		cookies = append(cookies, c)
	}
	for i, c := range cookies {
		r, s := getSession(st, c)
		if s == nil {
			return errors.New("session did not load")
		}
		if i%2 == 0 {
			s.Values["n"] = i
		}
		if i%4 == 0 {
			s.Options.MaxAge = -1 // logout
		}
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			return err
		}
	}
	table := `"` + strings.ReplaceAll(schema, `"`, `""`) + `".user_sessions`
	if _, err := db.Exec(`INSERT INTO ` + table + ` SELECT 'expired' || g, '{}', now() AT TIME ZONE 'UTC' - g * interval '1 minute' FROM generate_series(1, 300) g`); err != nil {
		return err
	}
	_, err = st.Revoke(context.Background(), "user_id", 42)
	return err
}

// scripts runs each psql script in docs/ops twice at the same time, as two
// people on one shared server might, and checks that every run succeeds and
// that no schema or role a run made is left behind. monitor.sql, which only
// reads, runs twice against a table that traffic leaves. Each run gets its
// schema name from here (-v schema), so the leftover check looks at exactly
// what these runs made, whatever else runs on the server.
func scripts() error {
	if _, err := exec.LookPath("psql"); err != nil {
		return err
	}
	db := open("postgres", *dsnFlag)
	defer db.Close()
	var made []string // schemas the runs were told to use; roles are named after them
	var mu sync.Mutex
	leftovers := func() ([]string, error) {
		var names []string
		for _, schema := range made {
			rows, err := db.Query(`SELECT nspname FROM pg_namespace WHERE nspname = $1
				UNION ALL SELECT rolname FROM pg_roles WHERE rolname IN ($1 || '_app', $1 || '_pruner')`, schema)
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var n string
				rows.Scan(&n)
				names = append(names, n)
			}
			rows.Close()
		}
		return names, nil
	}
	rows := fmt.Sprint(*rowsFlag)
	runs := []struct {
		script string
		vars   []string
	}{
		{"privileges.sql", nil},
		{"explain.sql", []string{"rows=" + rows}},
		{"size.sql", []string{"rows=" + rows}},
		{"partition.sql", nil},
		{"hot.sql", nil},
	}
	psql := func(script string, vars []string) (string, error) {
		args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", *dsnFlag, "-f", "docs/ops/" + script}
		if script != "monitor.sql" {
			schema := randomName("pgstore_ops_check_" + strings.TrimSuffix(script, ".sql"))
			mu.Lock()
			made = append(made, schema)
			mu.Unlock()
			args = append(args, "-v", "schema="+schema)
		}
		for _, v := range vars {
			args = append(args, "-v", v)
		}
		out, err := exec.Command("psql", args...).CombinedOutput()
		return string(out), err
	}
	twice := func(script string, vars []string) error {
		start := time.Now()
		var wg sync.WaitGroup
		outs, errs := make([]string, 2), make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = psql(script, vars)
			}()
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil {
				return fmt.Errorf("%s, run %d: %v\n%s", script, i+1, errs[i], outs[i])
			}
		}
		fmt.Printf("%-16s two runs at once: both ok (%s)\n", script, time.Since(start).Round(time.Second))
		return nil
	}
	for _, r := range runs {
		if err := twice(r.script, r.vars); err != nil {
			return err
		}
	}

	schema := randomName("pgstore_ops_monitor")
	if err := fillTraffic(schema); err != nil {
		return err
	}
	err := twice("monitor.sql", []string{"schema=" + schema, "table=user_sessions", "store_schema=" + schema, "zone=UTC"})
	if _, derr := db.Exec(`DROP SCHEMA "` + schema + `" CASCADE`); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return err
	}

	left, err := leftovers()
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %v", left)
	}
	fmt.Printf("none of the %d schemas the runs made (nor privileges.sql's roles) is left behind\n", len(made))
	return nil
}
