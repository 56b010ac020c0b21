package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"go.uber.org/goleak"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// runMainEnv makes the test binary run the program itself, so that the
// tests run it as users do: in a process of its own, which has none of the
// tests' gob registrations.
const runMainEnv = "PGSTORE_CMD_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.Stop() // the throwaway cluster pgtest.DSN may have started
		os.Exit(code)
	}))
}

// runCLI runs the program in a process of its own and returns its stdout,
// its stderr and its exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run pgstore: %v", err)
	}
	t.Logf("pgstore %s\nexit %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// testTable is a schema of the test's own on the test server, with a
// pgstore table in it made by a Store, which is returned (closed when t
// ends) with a pool on the database.
func testTable(t *testing.T) (dsn, schema string, st *pgstore.Store, db *sql.DB) {
	t.Helper()
	dsn = pgtest.Require(t)
	db = pgtest.OpenDSN(t, "postgres", dsn)
	schema = pgtest.Schema(t, db)
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dsn, schema, st, db
}

// importSession stores a session with values that expires at expires.
func importSession(t *testing.T, st *pgstore.Store, id string, values map[any]any, expires time.Time) {
	t.Helper()
	if ok, err := st.Import(context.Background(), id, values, time.Time{}, expires); !ok || err != nil {
		t.Fatalf("Import(%s) = %v, %v", id, ok, err)
	}
}

// expireAll makes the rows of ids expired an hour ago.
func expireAll(t *testing.T, db *sql.DB, schema string, ids ...string) {
	t.Helper()
	_, err := db.Exec(`UPDATE `+qualified(schema, pgstore.DefaultTableName)+
		` SET expire = (now() - interval '1 hour') AT TIME ZONE 'UTC' WHERE sid = ANY($1)`, pq.Array(ids))
	if err != nil {
		t.Fatal(err)
	}
}

func sids(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT sid FROM ` + qualified(schema, pgstore.DefaultTableName) + ` ORDER BY sid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			t.Fatal(err)
		}
		out = append(out, sid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every command has usage text; help prints it; unknown commands and bad
// flags exit 2.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage: pgstore COMMAND"},
		{[]string{"help"}, exitOK, "Usage: pgstore COMMAND"},
		{[]string{"-h"}, exitOK, "  revoke          delete every session whose value"},
		{[]string{"help"}, exitOK, "  sessions list   list the live sessions"},
		{[]string{"help"}, exitOK, "  sessions end    end one of those sessions"},
		{[]string{"help", "sessions"}, exitOK, "sign a user out everywhere, use \"pgstore revoke\""},
		{[]string{"sessions", "-h"}, exitOK, "  sessions end "},
		{[]string{"sessions"}, exitUsage, "Usage: pgstore sessions COMMAND"},
		{[]string{"sessions", "nope"}, exitUsage, `unknown command "sessions nope"`},
		{[]string{"help", "sessions", "list"}, exitOK, "never prints session IDs"},
		{[]string{"sessions", "end", "-help"}, exitOK, "-handle handle"},
		{[]string{"sessions", "list", "-value", "1", "-hash-key-env", "K"}, exitUsage, "-key is required"},
		{[]string{"sessions", "list", "-key", "user_id", "-value", "1"}, exitUsage, "-hash-key-env or -express-secret-env is required"},
		{[]string{"sessions", "list", "-key", "user_id", "-value", "1", "-hash-key-env", "A", "-express-secret-env", "B"}, exitUsage, "not both"},
		{[]string{"sessions", "list", "-key", "user_id", "-value", "1", "-hash-key-env", "PGSTORE_TEST_UNSET_VARIABLE"}, exitUsage, "$PGSTORE_TEST_UNSET_VARIABLE is not set"},
		{[]string{"sessions", "end", "-key", "user_id", "-value", "1", "-hash-key-env", "PATH"}, exitUsage, "-handle is required"},
		{[]string{"sessions", "end", "-key", "user_id", "-value", "1", "-handle", "h", "-hash-key-env", "hex:PATH"}, exitUsage, "-hash-key-env: $PATH is not hex"},
		{[]string{"help", "migrate"}, exitOK, "Usage: pgstore migrate -cookie-name NAME"},
		{[]string{"help", "prune"}, exitOK, "Store.Prune"},
		{[]string{"revoke", "-h"}, exitOK, "-value 42 and -value true are the number"},
		{[]string{"revoke", "-h"}, exitOK, `"sign out everywhere"`},
		{[]string{"stats", "-help"}, exitOK, "-json"},
		{[]string{"help", "nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"vacuum"}, exitUsage, `unknown command "vacuum"`},
		{[]string{"prune", "-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{[]string{"prune", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"revoke", "-value", "1"}, exitUsage, "-key is required"},
		{[]string{"revoke", "-key", "user"}, exitUsage, "-value is required"},
		{[]string{"revoke", "-key", "user", "-value", "[1]"}, exitUsage, "not an array"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		out := &stderr // errors, and the usage that comes with them
		if tc.code == exitOK {
			out = &stdout // asked-for help pipes into a pager
		}
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("pgstore %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.want)
		}
	}
}

// A server that does not answer is an error (exit 1) that names it, not a
// hang: pgstore.Open bounds the connection.
func TestUnreachableDatabase(t *testing.T) {
	_, stderr, code := runCLI(t, "stats", "-dsn", "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	if code != exitFailed || !strings.Contains(stderr, "pgstore stats: pgstore: connect to database") || !strings.Contains(stderr, "127.0.0.1") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	// migrate prints no summary of a run that never started.
	stdout, stderr, code := runCLI(t, "migrate", "-dsn", "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
		"-cookie-name", "session", "-hash-key", strings.Repeat("ab", 32))
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, "127.0.0.1") {
		t.Errorf("migrate: exit %d, stdout %q, stderr %q; want exit 1 and no summary", code, stdout, stderr)
	}
}
