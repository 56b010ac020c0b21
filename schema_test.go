package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Many processes starting at once all succeed. Without the
// advisory lock, concurrent CREATE TABLE IF NOT EXISTS fails in the losers
// with a duplicate key on pg_type (connect-pg-simple's failure).
func TestConcurrentTableCreation(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		for round := 0; round < 5; round++ {
			schema := pgtest.Schema(t, db)
			err := newAtOnce(8, func(int) (*pgstore.Store, error) {
				return newStoreOn(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema, PruneInterval: -1})
			})
			if err != nil {
				t.Fatalf("round %d: concurrent New: %v", round, err)
			}
		}
	})
}

// A role without CREATE works when the table exists, and gets a
// clear error when it does not.
func TestRoleWithoutCreatePrivilege(t *testing.T) {
	db := sharedDB(t, "postgres")
	dsn, _ := pgtest.DSN()
	role := loginRole(t, db, "pgstore_app_")
	withTable := pgtest.Schema(t, db)
	withoutTable := pgtest.Schema(t, db)
	admin := newTestStore(t, db, pgstore.Config{SchemaName: withTable})
	c := login(t, admin, map[any]any{"user": "alice"})
	for _, stmt := range []string{
		`GRANT USAGE ON SCHEMA "` + withTable + `", "` + withoutTable + `" TO "` + role + `"`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + qualified(withTable, "user_sessions") + ` TO "` + role + `"`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	for _, drv := range pgtest.Drivers {
		appDB := pgtest.OpenDSN(t, drv, withUser(dsn, role))
		st := newTestStore(t, appDB, pgstore.Config{SchemaName: withTable})
		if _, s := get(t, st, c); s.Values["user"] != "alice" {
			t.Fatalf("%s: restricted role could not read: %v", drv, s.Values)
		}
		login(t, st, map[any]any{"user": "bob"})

		_, err := pgstore.New(appDB, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: withoutTable, PruneInterval: -1})
		if err == nil || !strings.Contains(err.Error(), "SkipCreateTable") || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: New without privilege and without table: %v", drv, err)
		}
		_, err = pgstore.New(appDB, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: withoutTable, SkipCreateTable: true})
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s: New with SkipCreateTable and no table: %v", drv, err)
		}
	}
}

func withUser(dsn, user string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " user=" + user
	}
	u.User = url.User(user)
	return u.String()
}

// Identifiers are quoted, never spliced in raw.
func TestIdentifiersAreQuoted(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		base := pgtest.Schema(t, db)
		schema := base + ` we"ird; schema`
		if _, err := db.Exec(`CREATE SCHEMA ` + qualified("", schema)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + qualified("", schema) + ` CASCADE`) })
		table := `user "sessions"; DROP TABLE x; --`
		st := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: table})
		c := login(t, st, map[any]any{"a": "b"})
		if _, s := get(t, st, c); s.Values["a"] != "b" {
			t.Fatal("round trip through a strangely named table failed")
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + qualified(schema, table)).Scan(&n); err != nil || n != 1 {
			t.Fatalf("table %q: %d rows, %v", table, n, err)
		}
		if _, err := st.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// Custom tables never collide with another sessions table's
// constraint or index names in the same schema, including
// connect-pg-simple's fixed "session_pkey" and "IDX_session_expire".
func TestNoNameCollisions(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		schema := pgtest.Schema(t, db)
		// connect-pg-simple's own table, as its table.sql makes it.
		for _, stmt := range []string{
			`CREATE TABLE ` + qualified(schema, "session") + ` ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL)`,
			`ALTER TABLE ` + qualified(schema, "session") + ` ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE`,
			`CREATE INDEX "IDX_session_expire" ON ` + qualified(schema, "session") + ` ("expire")`,
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		long := strings.Repeat("s", 60)
		tables := []string{"user_sessions", "admin_sessions", "session_x", long + "_a", long + "_b", "IDX_user_sessions_expire", "user_sessions_expire_idx1"}
		for _, table := range tables {
			st := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: table})
			login(t, st, map[any]any{"t": table})
		}
		var indexes int
		if err := db.QueryRow(`SELECT count(*) FROM pg_indexes WHERE schemaname = $1`, schema).Scan(&indexes); err != nil {
			t.Fatal(err)
		}
		// Each table has a primary key and an expire index, the
		// connect-pg-simple table included.
		if want := 2 * (len(tables) + 1); indexes != want {
			t.Errorf("%d indexes, want %d", indexes, want)
		}
	})
}

func TestDDLReplacesEveryName(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{TableName: "web"})
	ddl := strings.Join(st.DDL(), "\n")
	if strings.Contains(ddl, "user_sessions") || strings.Contains(ddl, "CONSTRAINT") {
		t.Errorf("schema.sql changed and ddl no longer replaces its names:\n%s", ddl)
	}
	if !strings.Contains(ddl, qualified(st.SchemaName(), "web")) {
		t.Errorf("ddl does not name the table:\n%s", ddl)
	}
}

// A relation of another kind under the table's name is an error, not a
// table.
func TestTableNameTakenByIndex(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: "a"})
	_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema, TableName: "a_pkey"})
	if err == nil || !strings.Contains(err.Error(), "not a table") {
		t.Fatalf("New on a name taken by an index: %v", err)
	}
}

// schema.sql, run by hand, makes the same table New makes.
func TestSchemaSQLMatchesNew(t *testing.T) {
	db := sharedDB(t, "postgres")
	byHand := pgtest.Schema(t, db)
	ddl, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET search_path TO "`+byHand+`"`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, string(ddl)); err != nil {
		t.Fatalf("schema.sql: %v", err)
	}
	if _, err := conn.ExecContext(ctx, `RESET search_path`); err != nil {
		t.Fatal(err)
	}
	st := newTestStore(t, db, pgstore.Config{})
	if got, want := describeTable(t, db, st.SchemaName()), describeTable(t, db, byHand); got != want {
		t.Errorf("New made\n%s\nschema.sql made\n%s", got, want)
	}
	// And the shape is connect-pg-simple's.
	want := "sid character varying not null\nsess json not null\nexpire timestamp(6) without time zone not null\n" +
		"index: CREATE INDEX ON user_sessions USING btree (expire)\n" +
		"index: CREATE UNIQUE INDEX ON user_sessions USING btree (sid)\n"
	if got := describeTable(t, db, byHand); got != want {
		t.Errorf("table shape\n%s\nwant\n%s", got, want)
	}
}

// For the default table, New creates the constraint and index names that
// schema.sql spells, so that migrations written against schema.sql can
// refer to them by name.
func TestSchemaSQLNamesMatchNew(t *testing.T) {
	db := sharedDB(t, "postgres")
	ddl, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range regexp.MustCompile(`(?:CONSTRAINT|CREATE INDEX IF NOT EXISTS) "([^"]+)"`).FindAllStringSubmatch(string(ddl), -1) {
		want = append(want, m[1])
	}
	sort.Strings(want)
	if len(want) != 2 {
		t.Fatalf("schema.sql names %v; want a primary key and an expire index", want)
	}
	st := newTestStore(t, db, pgstore.Config{SchemaName: pgtest.Schema(t, db)})
	got := column(t, db, `SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'
		UNION SELECT indexname FROM pg_indexes WHERE schemaname = $2 AND tablename = 'user_sessions' ORDER BY 1`,
		qualified(st.SchemaName(), "user_sessions"), st.SchemaName())
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("New named the default table's constraint and indexes %v; schema.sql names %v", got, want)
	}
}

func describeTable(t *testing.T, db *sql.DB, schema string) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		qualified(schema, "user_sessions"))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, typ string
		var notNull bool
		if err := rows.Scan(&name, &typ, &notNull); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s", name, typ)
		if notNull {
			b.WriteString(" not null")
		}
		b.WriteByte('\n')
	}
	rows.Close()
	// Index names differ (New lets PostgreSQL pick them); definitions
	// must not.
	rows, err = db.Query(`SELECT replace(replace(indexdef, quote_ident($1) || '.', ''), quote_ident(indexname) || ' ', '') AS def
		FROM pg_indexes WHERE schemaname = $1 ORDER BY def`, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "index: %s\n", def)
	}
	return b.String()
}

// Rows are written and judged in Config.TimeZone whatever the
// connection's TimeZone. A Go connection in Tokyo (UTC+9) or Los Angeles
// must write the same expire as a UTC connection, and judge a row written
// the way connect-pg-simple writes it (to_timestamp on a UTC connection)
// expired at the same instant.
func TestTimeZoneImmunity(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		for _, zone := range []string{"Asia/Tokyo", "America/Los_Angeles"} {
			t.Run(drv+"/"+zone, func(t *testing.T) {
				t.Parallel()
				utcDB := pgtest.Open(t, drv, map[string]string{"options": "-c TimeZone=UTC"})
				zoneDB := pgtest.Open(t, drv, map[string]string{"options": "-c TimeZone=" + zone})
				var got string
				if err := zoneDB.QueryRow(`SHOW TimeZone`).Scan(&got); err != nil || got != zone {
					t.Fatalf("connection TimeZone %q, %v", got, err)
				}
				clk := newClock(t, utcDB)
				schema := pgtest.Schema(t, utcDB)
				zoned := newTestStore(t, zoneDB, pgstore.Config{SchemaName: schema}, clk.hooks())

				// Written by the zoned connection, read as UTC wall clock.
				c := login(t, zoned, map[any]any{"a": 1})
				want := clk.Now().UTC().Add(pgstore.DefaultMaxAge * time.Second)
				if got := expireOf(t, utcDB, schema, decodeID(t, c)); !got.Equal(want.Truncate(time.Microsecond)) {
					t.Errorf("expire %v, want %v (UTC wall clock)", got, want)
				}

				// Written as connect-pg-simple does, from a UTC connection.
				expireAt := clk.Now().Add(10 * time.Second)
				nodeCookie := login(t, zoned, map[any]any{"b": 2})
				if _, err := utcDB.Exec(`UPDATE `+qualified(schema, "user_sessions")+` SET expire = to_timestamp($1) WHERE sid = $2`,
					expireAt.Unix(), decodeID(t, nodeCookie)); err != nil {
					t.Fatal(err)
				}
				clk.Advance(9 * time.Second)
				if _, s := get(t, zoned, nodeCookie); s.IsNew {
					t.Errorf("a row with 1s left was judged expired")
				}
				clk.Advance(2 * time.Second)
				if _, s := get(t, zoned, nodeCookie); !s.IsNew {
					t.Errorf("a row expired 1s ago was loaded")
				}
				// Prune judges the same way: only that row has expired.
				if n, err := zoned.Prune(context.Background()); err != nil || n != 1 {
					t.Errorf("Prune: %d, %v; want 1", n, err)
				}
			})
		}
	}
}
