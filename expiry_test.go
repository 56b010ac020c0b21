package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// xmin is the id of the transaction that last wrote the row: it changes on
// every UPDATE, even one that writes identical values.
func xmin(t *testing.T, db *sql.DB, schema, sid string) string {
	t.Helper()
	var x string
	if err := db.QueryRow(`SELECT xmin::text FROM `+qualified(schema, "user_sessions")+` WHERE sid = $1`, sid).Scan(&x); err != nil {
		t.Fatalf("read xmin: %v", err)
	}
	return x
}

// Lazy touch: unchanged sessions cost zero writes and send no cookie until
// the stored expiry lags by TouchInterval.
func TestUnchangedSaveWritesNothing(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		schema := st.SchemaName()
		c := login(t, st, map[any]any{"user": "alice", "prefs": map[string]any{"theme": "dark"}, "n": 1.5})
		id := decodeID(t, c)
		before, expBefore := xmin(t, db, schema, id), expireOf(t, db, schema, id)

		for i := 0; i < 50; i++ {
			clk.Advance(time.Second) // 50 s in all: under the 1 minute default
			r, s := get(t, st, c)
			s.Values["user"] = "alice" // same value again: bytes decide, not assignments
			if set := save(t, st, r, s); set != nil {
				t.Fatalf("cycle %d: unchanged Save sent a cookie", i)
			}
		}
		if after := xmin(t, db, schema, id); after != before {
			t.Fatalf("xmin %s -> %s: unchanged saves wrote the row", before, after)
		}

		// Past the touch interval: one write that moves expire and re-sends
		// the cookie.
		clk.Advance(11 * time.Second)
		r, s := get(t, st, c)
		set := save(t, st, r, s)
		if set == nil || set.MaxAge != pgstore.DefaultMaxAge {
			t.Fatalf("touch did not re-send the cookie: %+v", set)
		}
		if after := xmin(t, db, schema, id); after == before {
			t.Fatal("touch did not write")
		}
		if got, want := expireOf(t, db, schema, id), clk.Now().UTC().Add(pgstore.DefaultMaxAge*time.Second); !got.Equal(want) || !got.After(expBefore) {
			t.Fatalf("expire after touch %v, want %v", got, want)
		}

		// In-place mutation of a nested value is a change: bytes, not flags.
		touched := xmin(t, db, schema, id)
		r, s = get(t, st, c)
		s.Values["prefs"].(map[string]any)["theme"] = "light"
		if set := save(t, st, r, s); set != nil {
			t.Error("a change within the touch interval re-sent the cookie")
		}
		if xmin(t, db, schema, id) == touched {
			t.Fatal("an in-place change was not written")
		}
		if _, s := get(t, st, c); s.Values["prefs"].(map[string]any)["theme"] != "light" {
			t.Fatal("in-place change lost")
		}
		if got := expireOf(t, db, schema, id); !got.Equal(clk.Now().UTC().Add(pgstore.DefaultMaxAge * time.Second)) {
			t.Errorf("a values-only write moved expire to %v", got)
		}
	})
}

// A negative TouchInterval writes on every Save, as connect-pg-simple does.
func TestTouchIntervalNegativeAlwaysWrites(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{TouchInterval: -1})
	c := login(t, st, map[any]any{"a": 1})
	id := decodeID(t, c)
	before := xmin(t, db, st.SchemaName(), id)
	r, s := get(t, st, c)
	save(t, st, r, s)
	if xmin(t, db, st.SchemaName(), id) == before {
		t.Fatal("unchanged Save did not write with TouchInterval < 0")
	}
}

// Unchanged Save within the touch interval costs zero round trips; a
// modified Save costs one.
func TestSaveRoundTrips(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			c := login(t, st, map[any]any{"n": 0})
			for i := 1; i <= 3; i++ { // warm every statement on the pool's connections
				r, s := get(t, st, c)
				s.Values["n"] = i
				save(t, st, r, s)
			}
			r, s := get(t, st, c)
			proxy.Reset()
			save(t, st, r, s)
			if n := proxy.RoundTrips(); n != 0 {
				t.Errorf("unchanged Save: %d round trips, want 0", n)
			}
			s.Values["n"] = 100
			proxy.Reset()
			save(t, st, r, s)
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("modified Save: %d round trips, want 1 (%q)", n, proxy.Statements())
			}
			r, s = get(t, st, nil)
			s.Values["n"] = 1
			proxy.Reset()
			save(t, st, r, s)
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("new Save: %d round trips, want 1 (%q)", n, proxy.Statements())
			}
		})
	}
}

// Two sessions under two cookie names in one request each keep what was
// loaded for them: an unchanged one is not written, a changed one costs one
// statement and no extra read, and logging one out leaves the other alone.
func TestTwoSessionsInOneRequest(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			create := func(name string) *http.Cookie {
				r := request()
				s, err := st.Get(r, name)
				if err != nil {
					t.Fatal(err)
				}
				s.Values["who"] = name
				return save(t, st, r, s)
			}
			ca, cb := create("a"), create("b")
			load := func() (*http.Request, *sessions.Session, *sessions.Session) {
				r := request(ca, cb)
				sa, err := st.Get(r, "a")
				if err != nil || sa.IsNew || sa.Values["who"] != "a" {
					t.Fatalf("session a: new %v values %v err %v", sa.IsNew, sa.Values, err)
				}
				sb, err := st.Get(r, "b")
				if err != nil || sb.IsNew || sb.Values["who"] != "b" {
					t.Fatalf("session b: new %v values %v err %v", sb.IsNew, sb.Values, err)
				}
				return r, sa, sb
			}
			for i := 0; i < 3; i++ { // warm every statement on the pool's connections
				r, sa, sb := load()
				sa.Values["n"], sb.Values["n"] = i, i
				save(t, st, r, sa)
				save(t, st, r, sb)
			}

			r, sa, sb := load()
			sb.Values["n"] = 10
			steps := []struct {
				what string
				s    *sessions.Session
				want int64
			}{
				{"unchanged a", sa, 0},
				{"changed b", sb, 1},
				{"b again, unchanged since its save", sb, 0},
			}
			for _, step := range steps {
				proxy.Reset()
				save(t, st, r, step.s)
				if n := proxy.RoundTrips(); n != step.want {
					t.Errorf("%s: %d round trips, want %d (%q)", step.what, n, step.want, proxy.Statements())
				}
			}
			sa.Options.MaxAge = -1
			save(t, st, r, sa)
			sb.Values["n"] = 11
			proxy.Reset()
			save(t, st, r, sb)
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("changed b after logging a out: %d round trips, want 1", n)
			}

			r = request(ca, cb)
			if sa, _ := st.Get(r, "a"); !sa.IsNew {
				t.Errorf("a came back after logout: %v", sa.Values)
			}
			if sb, _ := st.Get(r, "b"); sb.IsNew || sb.Values["n"] != 11 {
				t.Errorf("b: new %v values %v, want n=11", sb.IsNew, sb.Values)
			}
		})
	}
}

// The absolute timeout ends a session however active it is; its creation
// time survives rewrites; expire never runs past it.
func TestAbsoluteTimeout(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{AbsoluteTimeout: 2 * time.Hour}, clk.hooks())
		created := clk.Now()
		c := login(t, st, map[any]any{"n": 0})
		id := decodeID(t, c)
		if got, want := expireOf(t, db, st.SchemaName(), id), created.UTC().Add(2*time.Hour); !got.Equal(want) {
			t.Errorf("expire %v, want capped at %v", got, want)
		}
		// Active every 10 minutes, changing a value each time.
		for i := 1; i < 12; i++ {
			clk.Advance(10 * time.Minute)
			r, s := get(t, st, c)
			if s.IsNew {
				t.Fatalf("session ended early, after %d minutes", i*10)
			}
			s.Values["n"] = i
			save(t, st, r, s)
		}
		sess, _ := row(t, db, st.SchemaName(), id)
		var doc struct {
			Meta struct {
				Created int64 `json:"created"`
			} `json:"_pgstore"`
		}
		if err := json.Unmarshal([]byte(sess), &doc); err != nil || doc.Meta.Created != created.Unix() {
			t.Fatalf("creation time did not survive rewrites: %s", sess)
		}
		clk.Advance(10 * time.Minute) // 2 h after creation
		if _, s := get(t, st, c); !s.IsNew || len(s.Values) != 0 {
			t.Fatalf("session alive past its absolute timeout: %v", s.Values)
		}

		// Regenerate restarts the clock (login starts an authenticated
		// session).
		c2 := login(t, st, map[any]any{"n": 0})
		clk.Advance(90 * time.Minute)
		r, s := get(t, st, c2)
		w := httptest.NewRecorder()
		if err := st.Regenerate(r, w, s); err != nil {
			t.Fatal(err)
		}
		c3 := responseCookie(w, cookieName)
		clk.Advance(90 * time.Minute)
		if _, s := get(t, st, c3); s.IsNew {
			t.Fatal("regenerated session ended by the old creation time")
		}
	})
}

// Remember me: a per-session MaxAge beyond the default is kept across
// loads and touches, and the row follows it.
func TestRememberMe(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		const ninety = 90 * 24 * 3600
		r, s := get(t, st, nil)
		s.Values["user"] = "alice"
		s.Options.MaxAge = ninety
		c := save(t, st, r, s)
		if c.MaxAge != ninety {
			t.Fatalf("cookie MaxAge %d", c.MaxAge)
		}
		id := decodeID(t, c)
		if got, want := expireOf(t, db, st.SchemaName(), id), clk.Now().UTC().Add(ninety*time.Second); !got.Equal(want) {
			t.Fatalf("expire %v, want %v", got, want)
		}
		// 45 days later (past the 30-day default and securecookie's own
		// 30-day timestamp limit) the session is still there.
		clk.Advance(45 * 24 * time.Hour)
		r, s = get(t, st, c)
		if s.IsNew || s.Options.MaxAge != ninety {
			t.Fatalf("remembered session lost after 45 days: new %v, MaxAge %d", s.IsNew, s.Options.MaxAge)
		}
		c = save(t, st, r, s) // a touch
		if c == nil || c.MaxAge != ninety {
			t.Fatalf("touch cookie %+v", c)
		}
		if got, want := expireOf(t, db, st.SchemaName(), id), clk.Now().UTC().Add(ninety*time.Second); !got.Equal(want) {
			t.Fatalf("touch moved expire to %v, want %v", got, want)
		}
		// Switching remember-me off shortens the row at once.
		r, s = get(t, st, c)
		s.Options.MaxAge = pgstore.DefaultMaxAge
		save(t, st, r, s)
		if got, want := expireOf(t, db, st.SchemaName(), id), clk.Now().UTC().Add(pgstore.DefaultMaxAge*time.Second); !got.Equal(want) {
			t.Fatalf("after remember-me off, expire %v, want %v", got, want)
		}
		if _, s := get(t, st, c); s.Options.MaxAge != pgstore.DefaultMaxAge {
			t.Fatalf("MaxAge %d after switching back", s.Options.MaxAge)
		}
	})
}

// MaxAge 0 is a browser-session cookie: no Max-Age, and the row lives
// BrowserSessionTTL past its last use instead of being deleted (gorilla's
// FilesystemStore deletes it).
func TestBrowserSessionCookie(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		r, s := get(t, st, nil)
		s.Values["user"] = "alice"
		s.Options.MaxAge = 0
		w := httptest.NewRecorder()
		if err := st.Save(r, w, s); err != nil {
			t.Fatal(err)
		}
		header := w.Header().Get("Set-Cookie")
		if strings.Contains(header, "Max-Age") || strings.Contains(header, "Expires") {
			t.Fatalf("browser-session cookie has a lifetime: %s", header)
		}
		c := responseCookie(w, cookieName)
		id := decodeID(t, c)
		if got, want := expireOf(t, db, st.SchemaName(), id), clk.Now().UTC().Add(pgstore.DefaultBrowserSessionTTL); !got.Equal(want) {
			t.Fatalf("expire %v, want %v", got, want)
		}
		clk.Advance(23 * time.Hour)
		r, s = get(t, st, c)
		if s.IsNew || s.Options.MaxAge != 0 {
			t.Fatalf("browser session: new %v MaxAge %d", s.IsNew, s.Options.MaxAge)
		}
		w = httptest.NewRecorder()
		if err := st.Save(r, w, s); err != nil { // a touch: moves the row, cookie unchanged
			t.Fatal(err)
		}
		if responseCookie(w, cookieName) != nil {
			t.Error("a touch re-sent a browser-session cookie, which has no expiry to refresh")
		}
		clk.Advance(23 * time.Hour)
		if _, s := get(t, st, c); s.IsNew {
			t.Fatal("the touch did not extend a browser session")
		}
		clk.Advance(25 * time.Hour)
		if _, s := get(t, st, c); !s.IsNew {
			t.Fatal("an idle browser session outlived BrowserSessionTTL")
		}
	})
}

func TestJitterRange(t *testing.T) {
	d := 15 * time.Minute
	lo, hi := d, time.Duration(0)
	for i := 0; i < 2000; i++ {
		j := pgstore.Jitter(d)
		if j < d/2 || j >= d*3/2 {
			t.Fatalf("jitter %v outside [%v, %v)", j, d/2, d*3/2)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	if lo > d*6/10 || hi < d*14/10 {
		t.Errorf("jitter does not spread: %v..%v", lo, hi)
	}
}

// insertExpired writes n rows that expired an hour before now, and live
// ones, straight into the table.
func insertRows(t testing.TB, db *sql.DB, schema string, n int, expire time.Time, prefix string) {
	t.Helper()
	_, err := db.Exec(`INSERT INTO `+qualified(schema, "user_sessions")+` (sid, sess, expire)
		SELECT $1 || g, '{}', to_timestamp($2) AT TIME ZONE 'UTC' FROM generate_series(1, $3) g`,
		prefix, expire.Unix(), n)
	if err != nil {
		t.Fatal(err)
	}
}

// One pruner per table at a time: while another session holds the lock,
// a round is skipped.
func TestPruneRoundSkipsWhenLocked(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	insertRows(t, db, st.SchemaName(), 10, time.Now().Add(-time.Hour), "x")
	ctx := ctxTimeout(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, st.LockKey("prune")); err != nil {
		t.Fatal(err)
	}
	n, locked, err := st.PruneRound(ctx)
	if err != nil || locked || n != 0 {
		t.Fatalf("round while locked: %d, locked %v, %v", n, locked, err)
	}
	if got := rowCount(t, db, st.SchemaName(), "user_sessions"); got != 10 {
		t.Fatalf("rows deleted while another store held the lock: %d left", got)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, st.LockKey("prune")); err != nil {
		t.Fatal(err)
	}
	n, locked, err = st.PruneRound(ctx)
	if err != nil || !locked || n != 10 {
		t.Fatalf("round after unlock: %d, locked %v, %v", n, locked, err)
	}
}

// Several stores on one table pruning at once: every expired row goes,
// no live one does, and nothing deadlocks or leaks.
func TestManyStoresPruneTogether(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		schema := pgtest.Schema(t, db)
		var stores []*pgstore.Store
		for i := 0; i < 4; i++ {
			stores = append(stores, newTestStore(t, db, pgstore.Config{SchemaName: schema}))
		}
		insertRows(t, db, schema, 5500, time.Now().Add(-time.Hour), "old")
		insertRows(t, db, schema, 300, time.Now().Add(time.Hour), "live")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var total int64
		for round := 0; round < 3; round++ {
			for _, st := range stores {
				wg.Add(2)
				go func(st *pgstore.Store) { // background-style rounds
					defer wg.Done()
					n, _, err := st.PruneRound(context.Background())
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}(st)
				go func(st *pgstore.Store) { // cron-style Prune beside them
					defer wg.Done()
					n, err := st.Prune(context.Background())
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}(st)
			}
		}
		wg.Wait()
		if total != 5500 {
			t.Errorf("deleted %d rows in all, want 5500", total)
		}
		var left, live int
		db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE sid LIKE 'live%') FROM `+qualified(schema, "user_sessions")).Scan(&left, &live)
		if left != 300 || live != 300 {
			t.Errorf("%d rows left, %d live; want exactly the 300 live", left, live)
		}
	})
}

// Pruning works in bounded batches.
func TestPruneIsBatched(t *testing.T) {
	db, proxy := proxied(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	insertRows(t, db, st.SchemaName(), 2500, time.Now().Add(-time.Hour), "x")
	proxy.Reset()
	n, err := st.Prune(context.Background())
	if err != nil || n != 2500 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	deletes := 0
	for _, q := range proxy.Statements() {
		if strings.Contains(q, "DELETE FROM") {
			deletes++
			if !strings.Contains(q, "LIMIT $2") {
				t.Errorf("unbounded delete: %s", q)
			}
		}
	}
	if deletes != 3 {
		t.Errorf("%d DELETE statements for 2500 rows, want 3 batches", deletes)
	}
}

// The background loop: it prunes on each tick, reports errors to the
// Logger and carries on, never spins, and stops on Close.
func TestBackgroundPruner(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	var logs syncBuffer
	ticks := make(chan time.Time)
	waits := make(chan time.Duration, 10)
	results := make(chan error, 10)
	st, err := pgstore.NewWithHooks(db, pgstore.Config{
		KeyPairs:      [][]byte{hashKey1},
		SchemaName:    schema,
		PruneInterval: time.Hour,
		Logger:        slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, pgstore.TestHooks{
		PruneWait: func(d time.Duration) <-chan time.Time { waits <- d; return ticks },
		Pruned:    func(n int64, err error) { results <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	insertRows(t, db, schema, 5, time.Now().Add(-time.Hour), "x")
	if d := <-waits; d < 30*time.Minute || d >= 90*time.Minute {
		t.Errorf("first wait %v, want within 50-150%% of an hour", d)
	}
	ticks <- time.Now()
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, db, schema, "user_sessions"); n != 0 {
		t.Fatalf("%d rows left after a round", n)
	}
	// A failing round is logged and the loop waits a full interval again.
	if _, err := db.Exec(`ALTER TABLE ` + qualified(schema, "user_sessions") + ` RENAME TO moved`); err != nil {
		t.Fatal(err)
	}
	<-waits
	ticks <- time.Now()
	if err := <-results; err == nil {
		t.Fatal("round on a missing table succeeded")
	}
	if d := <-waits; d < 30*time.Minute {
		t.Errorf("after an error the loop waited only %v", d)
	}
	if !strings.Contains(logs.String(), "pruning expired sessions failed") {
		t.Errorf("error not logged: %s", logs.String())
	}
	done := make(chan error)
	go func() { done <- st.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the pruner")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// The prune batch goes through the indexes even in a generic plan (pgx
// prepares statements by name and PostgreSQL switches to a generic plan
// after five runs); an earlier form of the statement hash-joined the whole
// table.
func TestPrunePlanUsesIndexes(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	insertRows(t, db, st.SchemaName(), 50_000, time.Now().Add(time.Hour), "live")
	insertRows(t, db, st.SchemaName(), 2_000, time.Now().Add(-time.Hour), "old")
	if _, err := db.Exec(`ANALYZE ` + qualified(st.SchemaName(), "user_sessions")); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = `+mode); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, `PREPARE prune_batch(float8, int, bigint) AS `+st.PruneSQL()); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.QueryContext(ctx, fmt.Sprintf(`EXPLAIN EXECUTE prune_batch(%d, 1000, %d)`, time.Now().Unix(), st.LockKey("prune")))
		if err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		var readErr error
		for readErr == nil && rows.Next() {
			var line string
			readErr = rows.Scan(&line)
			plan.WriteString(line + "\n")
		}
		rows.Close() // before failing: open rows would hold the table against the schema's drop
		if readErr == nil {
			readErr = rows.Err()
		}
		if readErr != nil {
			t.Fatalf("%s: read the plan: %v", mode, readErr)
		}
		if !strings.Contains(plan.String(), "Index") {
			t.Errorf("%s: the prune batch's plan uses no index:\n%s", mode, plan.String())
		}
		if strings.Contains(plan.String(), "Seq Scan") || strings.Contains(plan.String(), "Hash") {
			t.Errorf("%s: prune batch scans the table:\n%s", mode, plan.String())
		}
		if _, err := conn.ExecContext(ctx, `DEALLOCATE prune_batch`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.ExecContext(ctx, `RESET plan_cache_mode`); err != nil {
		t.Fatal(err)
	}
}
