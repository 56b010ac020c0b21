package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// prune deletes the expired rows and only those, and says how many.
func TestPrune(t *testing.T) {
	dsn, schema, st, db := testTable(t)
	later := time.Now().Add(time.Hour)
	for _, id := range []string{"live1", "live2", "old1", "old2", "old3"} {
		importSession(t, st, id, map[any]any{"user": id}, later)
	}
	expireAll(t, db, schema, "old1", "old2", "old3")
	out, _, code := runCLI(t, "prune", "-dsn", dsn, "-schema", schema)
	if code != exitOK || out != "deleted 3 expired sessions\n" {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if got := sids(t, db, schema); !slices.Equal(got, []string{"live1", "live2"}) {
		t.Errorf("rows left: %q", got)
	}
}

// A table that does not exist is an error, and is not created.
func TestPruneMissingTable(t *testing.T) {
	dsn, schema, _, db := testTable(t)
	_, stderr, code := runCLI(t, "prune", "-dsn", dsn, "-schema", schema, "-table", "nothing_here")
	if code != exitFailed || !strings.Contains(stderr, `"nothing_here" does not exist`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var exists bool
	if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, qualified(schema, "nothing_here")).Scan(&exists); err != nil || exists {
		t.Errorf("prune created the table (%v)", err)
	}
}
