package pgstore_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Stats counts what the store did, each counter for its own event.
func TestStats(t *testing.T) {
	db := sharedDB(t, "pgx")
	through, proxy := proxied(t, "pgx")
	st := newTestStore(t, through, pgstore.Config{SchemaName: pgtest.Schema(t, db)})
	want := pgstore.Stats{}
	check := func(step string) {
		t.Helper()
		if got := st.Stats(); got != want {
			t.Fatalf("after %s:\n got %+v\nwant %+v", step, got, want)
		}
	}
	check("New")

	c := login(t, st, map[any]any{"user": "ada"})
	want.Inserts++
	check("a login")

	r, s := get(t, st, c)
	want.Loads++
	save(t, st, r, s)
	want.SkippedWrites++
	check("an unchanged Save")

	s.Values["n"] = 1
	save(t, st, r, s)
	want.Updates++
	check("a changed Save")

	if err := st.Regenerate(r, httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	want.Inserts++
	check("Regenerate")

	c2 := login(t, st, map[any]any{"user": "ada"})
	want.Inserts++
	r2, s2 := get(t, st, c2)
	want.Loads++
	s2.Options.MaxAge = -1
	save(t, st, r2, s2)
	want.Deletes++
	check("a logout")

	if n, err := st.Revoke(context.Background(), "user", "ada"); err != nil || n != 1 {
		t.Fatalf("Revoke: %d, %v", n, err)
	}
	want.Revoked++
	check("Revoke")

	insertRows(t, db, st.SchemaName(), 3, time.Now().Add(-time.Hour), "old")
	if _, _, err := st.PruneRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	want.PruneRounds += 2
	want.PrunedRows += 3
	check("two pruning rounds")

	if _, err := db.Exec(`INSERT INTO ` + qualified(st.SchemaName(), "user_sessions") + ` VALUES ('x', '[]', 'infinity')`); err != nil {
		t.Fatal(err)
	}
	c3 := login(t, st, map[any]any{"user": "bob"})
	want.Inserts++
	if _, err := db.Exec(`UPDATE ` + qualified(st.SchemaName(), "user_sessions") + ` SET sess = '[]' WHERE sid <> 'x'`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(request(c3), cookieName); err == nil {
		t.Fatal("Get of a corrupt row: no error")
	}
	want.Loads++
	want.Errors.Corrupt++
	check("a corrupt row")

	proxy.Close()
	if _, err := st.Get(request(c3), cookieName); err == nil {
		t.Fatal("Get with the database unreachable: no error")
	}
	got := st.Stats()
	if got.Errors.Connection != 1 || got.Retries == 0 || got.Loads != want.Loads+1 {
		t.Fatalf("after a failed load: %+v", got)
	}
}
