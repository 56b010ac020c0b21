package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

// stats counts rows, live and expired, sums the sess column and finds the
// oldest live session's creation and the next expiry; -json prints the
// same for machines.
func TestStats(t *testing.T) {
	dsn, schema, st, db := testTable(t)
	args := []string{"stats", "-dsn", dsn, "-schema", schema}

	out, _, code := runCLI(t, append(args, "-json")...)
	var empty map[string]any
	if err := json.Unmarshal([]byte(out), &empty); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v: %q", code, err, out)
	}
	if empty["rows"] != 0.0 || empty["live"] != 0.0 || empty["sess_bytes"] != 0.0 || empty["oldest_created"] != nil || empty["next_expiry"] != nil {
		t.Errorf("stats of an empty table: %v", empty)
	}

	now := time.Now()
	imports := []struct {
		id               string
		created, expires time.Time
	}{
		{"young", now.Add(-time.Hour), now.Add(3 * time.Hour)},
		{"oldest", now.Add(-50 * time.Hour), now.Add(2 * time.Hour)},
		{"soonest", now.Add(-2 * time.Hour), now.Add(time.Hour)},
		{"gone1", now.Add(-100 * time.Hour), now.Add(time.Hour)},
		{"gone2", now.Add(-100 * time.Hour), now.Add(time.Hour)},
	}
	for _, im := range imports {
		if ok, err := st.Import(context.Background(), im.id, map[any]any{"user": strings.Repeat(im.id, 10)}, im.created, im.expires); !ok || err != nil {
			t.Fatalf("Import = %v, %v", ok, err)
		}
	}
	expireAll(t, db, schema, "gone1", "gone2")
	// Rows of other writers, whose created the store would not read, and
	// one holding a \u0000, which makes -> and ->> fail on any row.
	for i, sess := range []string{`{"_pgstore":{"created":1e400}}`, `{"_pgstore":{"created":0}}`, `{"_pgstore":{"created":"1"}}`, `[1]`,
		`{"note":"a\u0000b"}`} {
		if _, err := db.Exec(`INSERT INTO `+qualified(schema, pgstore.DefaultTableName)+` VALUES ($1, $2, 'infinity')`, fmt.Sprint("other", i), sess); err != nil {
			t.Fatal(err)
		}
	}
	var wantBytes, wantLargest int64
	rows, err := db.Query(`SELECT sess::text FROM ` + qualified(schema, pgstore.DefaultTableName))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var sess string
		if err := rows.Scan(&sess); err != nil {
			t.Fatal(err)
		}
		wantBytes += int64(len(sess))
		wantLargest = max(wantLargest, int64(len(sess)))
	}
	rows.Close()

	out, _, code = runCLI(t, append(args, "-json")...)
	var got stats
	if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v: %q", code, err, out)
	}
	want := stats{Table: qualified(schema, pgstore.DefaultTableName), Rows: 10, Live: 8, Expired: 2, SessBytes: wantBytes, LargestSessBytes: wantLargest}
	if got.Table != want.Table || got.Rows != want.Rows || got.Live != want.Live || got.Expired != want.Expired ||
		got.SessBytes != want.SessBytes || got.LargestSessBytes != want.LargestSessBytes || got.TableBytes <= 0 {
		t.Errorf("stats = %+v, want %+v and table_bytes > 0", got, want)
	}
	if wantCreated := imports[1].created.Truncate(time.Second); got.OldestCreated == nil || !got.OldestCreated.Equal(wantCreated) {
		t.Errorf("oldest_created = %v, want %v", got.OldestCreated, wantCreated)
	}
	if wantNext := imports[2].expires.Truncate(time.Millisecond); got.NextExpiry == nil || !got.NextExpiry.Equal(wantNext) {
		t.Errorf("next_expiry = %v, want %v", got.NextExpiry, wantNext)
	}

	out, _, code = runCLI(t, args...)
	for _, line := range []string{
		"rows             10\n",
		"live             8\n",
		"expired          2 (prune deletes them)\n",
		"oldest created   " + got.OldestCreated.Format(time.RFC3339) + "\n",
		"sess size        " + bytesText(wantBytes) + " in total, " + bytesText(wantLargest) + " the largest\n",
	} {
		if code != exitOK || !strings.Contains(out, line) {
			t.Errorf("exit %d; the text lacks %q:\n%s", code, line, out)
		}
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}
