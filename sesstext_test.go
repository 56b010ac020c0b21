package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// pgstore_sess_text(sess, key) is sess ->> key where that works, NULL
// where the key's own value holds what text cannot (\u0000, half a
// surrogate pair), and never an error, wherever such an escape sits.
func TestSessTextReadsWhatArrowCannot(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	fn := qualified(st.SchemaName(), "pgstore_sess_text")
	null := "<NULL>"
	for _, c := range []struct{ doc, key, want string }{
		// Readable documents: what ->> gives.
		{`{"a":"x"}`, "a", "x"},
		{`{"a":12.50,"b":true}`, "a", "12.50"},
		{`{"a":{"n":[1,2]}}`, "a", `{"n":[1,2]}`},
		{`{"a":"\u003c\u00e9\"\n\\"}`, "a", "<é\"\n\\"},
		{`{"a":"\ud83d\ude00"}`, "a", "😀"},
		{`{"\u0061":"x"}`, "a", "x"},
		{`{"a":null}`, "a", null},
		{`{"b":1}`, "a", null},
		{`[1,2]`, "a", null},
		{`"a"`, "a", null},
		// Elsewhere in the document: the key still reads.
		{`{"a":"x","b":"\u0000"}`, "a", "x"},
		{`{"b":"\u0000","a":"x"}`, "a", "x"},
		{`{"\u0000":1,"a":"x"}`, "a", "x"},
		{`{"b":{"c":["\u0000"]},"a":"x"}`, "a", "x"},
		{`{"a":"x","b":"\ud800"}`, "a", "x"},
		{`{"a":"x","b":"\udc00"}`, "a", "x"},
		{`{"a":"x","b":"\uD800\uD800\uDC00"}`, "a", "x"},
		{`{"a":12,"k":[1,"\u0000"]}`, "a", "12"},
		// The key's own value: NULL, as no text equals it.
		{`{"a":"x\u0000"}`, "a", null},
		{`{"a":"\u0000"}`, "a", null},
		{`{"a":"x\ud800y"}`, "a", null},
		{`{"a":"\udc00","k":"v"}`, "a", null},
		{`{"a":"\ud83d\ud83d\ude00"}`, "a", null},
		{`{"a":{"n":"\u0000"}}`, "a", null},
		// Backslashes: \\u0000 is text, \\\u0000 is a backslash and a NUL.
		{`{"a":"x\\u0000","b":"\u0000"}`, "a", `x\u0000`},
		{`{"a":"x\\\u0000","b":"\u0000"}`, "a", null},
		{`{"a":"x\\\\u0000","b":"\u0000"}`, "a", `x\\u0000`},
		{`{"a":"\\ud800","b":"\u0000"}`, "a", `\ud800`},
		// Whole surrogate pairs stay characters beside a NUL, in either case.
		{`{"a":"\ud83d\ude00","b":"\u0000"}`, "a", "😀"},
		{`{"a":"\uD83D\uDE00","b":"\u0000"}`, "a", "😀"},
		{`{"a":"\u00e9\u0041","b":"\u0000"}`, "a", "éA"},
		// Keys that differ from the key only where text cannot go never
		// stand in for it, whatever the key holds.
		{`{"a\u0000":"x","a":"y"}`, "a", "y"},
		{`{"a":"y","a\u0000":"x"}`, "a", "y"},
		{`{"a\u0001":"y","a\u0000":"x"}`, "a\x01", "y"},
		{`{"a\u0002":"y","a\u0000":"x"}`, "a\x02", "y"},
		{`{"a\u0001\u0002":"y","a\u0000\u0000":"x","a\u0001\u0000":"z"}`, "a\x01\x02", "y"},
	} {
		var got sql.NullString
		if err := db.QueryRow(`SELECT `+fn+`($1::text::json, $2)`, c.doc, c.key).Scan(&got); err != nil {
			t.Errorf("%s, %q: %v", c.doc, c.key, err)
			continue
		}
		if g := map[bool]string{true: got.String, false: null}[got.Valid]; g != c.want {
			t.Errorf("%s, %q: %q, want %q", c.doc, c.key, g, c.want)
		}
		// Where ->> works, the two agree.
		var arrow sql.NullString
		if err := db.QueryRow(`SELECT $1::text::json ->> $2`, c.doc, c.key).Scan(&arrow); err == nil && arrow != got {
			t.Errorf("%s, %q: %v, but ->> gives %v", c.doc, c.key, got, arrow)
		}
	}
}

// schema.sql, run by hand, makes the function New makes.
func TestSchemaSQLFunctionMatchesNew(t *testing.T) {
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
	for _, q := range []string{`SET search_path TO "` + byHand + `"`, string(ddl), string(ddl), `RESET search_path`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	st := newTestStore(t, db, pgstore.Config{})
	if got, want := functionDef(t, db, st.SchemaName()), functionDef(t, db, byHand); got != want || want == "" {
		t.Errorf("New made\n%s\nschema.sql made\n%s", got, want)
	}
}

func functionDef(t *testing.T, db *sql.DB, schema string) string {
	t.Helper()
	var def sql.NullString
	if err := db.QueryRow(`SELECT replace(pg_get_functiondef(to_regprocedure($1)), $2, '')`,
		qualified(schema, "pgstore_sess_text")+"(json, text)", schema).Scan(&def); err != nil {
		t.Fatal(err)
	}
	return def.String
}

// A table made before the function existed gets it from New. With
// SkipCreateTable, New serves sessions without it, warns, and Revoke says
// what to run until someone has run it.
func TestNewInstallsSessTextBesideExistingTable(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	// The table as an earlier schema.sql made it.
	for _, stmt := range []string{
		`CREATE TABLE ` + qualified(schema, "user_sessions") + ` ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"))`,
		`CREATE INDEX ON ` + qualified(schema, "user_sessions") + ` ("expire")`,
		`INSERT INTO ` + qualified(schema, "user_sessions") + ` VALUES ('old', '{"user_id":1,"x":"\u0000"}', now() + interval '1 day')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	skip := newTestStore(t, db, pgstore.Config{SchemaName: schema, SkipCreateTable: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "pgstore_sess_text") {
		t.Errorf("New with SkipCreateTable and no function logged %q, want a warning", logs.String())
	}
	c := login(t, skip, map[any]any{"user_id": 2}) // sessions work without the function
	_, err := skip.Revoke(context.Background(), "user_id", 1)
	if err == nil || !strings.Contains(err.Error(), "pgstore_sess_text") || !strings.Contains(err.Error(), "schema.sql") ||
		!strings.Contains(err.Error(), "SkipCreateTable") {
		t.Fatalf("Revoke with SkipCreateTable and no function: %v", err)
	}
	st := newTestStore(t, db, pgstore.Config{SchemaName: schema}) // creates it
	if n, err := st.Revoke(context.Background(), "user_id", 1); err != nil || n != 1 {
		t.Fatalf("Revoke on the old table: %d, %v", n, err)
	}
	if n, err := skip.Revoke(context.Background(), "user_id", 2); err != nil || n != 1 {
		t.Fatalf("Revoke through the first store, once the function exists: %d, %v", n, err)
	}
	if _, s := get(t, skip, c); !s.IsNew {
		t.Error("the revoked session still loads")
	}
	newTestStore(t, db, pgstore.Config{SchemaName: schema, SkipCreateTable: true})
}

// Stores of different tables in one schema share the function, and
// creating it when they start at once does not fail any of them.
func TestConcurrentSessTextCreation(t *testing.T) {
	db := sharedDB(t, "postgres")
	for round := range 5 {
		schema := pgtest.Schema(t, db)
		err := newAtOnce(8, func(i int) (*pgstore.Store, error) {
			return pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema,
				TableName: fmt.Sprintf("t%d", i), PruneInterval: -1})
		})
		if err != nil {
			t.Fatalf("round %d: concurrent New of tables in one schema: %v", round, err)
		}
	}
}

// A role that may not create in the schema works when the function
// exists; when it does not, sessions still work and Revoke says what to
// run.
func TestSessTextWithoutCreatePrivilege(t *testing.T) {
	db := sharedDB(t, "postgres")
	dsn, _ := pgtest.DSN()
	role := loginRole(t, db, "pgstore_fn_")
	schema := pgtest.Schema(t, db)
	newTestStore(t, db, pgstore.Config{SchemaName: schema})
	for _, stmt := range []string{
		`GRANT USAGE ON SCHEMA "` + schema + `" TO "` + role + `"`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + qualified(schema, "user_sessions") + ` TO "` + role + `"`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	appDB := pgtest.OpenDSN(t, "postgres", withUser(dsn, role))
	st := newTestStore(t, appDB, pgstore.Config{SchemaName: schema})
	login(t, st, map[any]any{"user_id": 5})
	if n, err := st.Revoke(context.Background(), "user_id", 5); err != nil || n != 1 {
		t.Fatalf("Revoke as a role without CREATE: %d, %v", n, err)
	}
	if _, err := db.Exec(`DROP FUNCTION ` + qualified(schema, "pgstore_sess_text") + `(json, text)`); err != nil {
		t.Fatal(err)
	}
	st = newTestStore(t, appDB, pgstore.Config{SchemaName: schema})
	login(t, st, map[any]any{"user_id": 6}) // sessions work without the function
	_, err := st.Revoke(context.Background(), "user_id", 6)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "schema.sql") {
		t.Errorf("Revoke without privilege and without function: %v", err)
	}
}
