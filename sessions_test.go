package pgstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// device logs in as user from a client with the given user agent and
// address, and returns its cookie.
func device(t *testing.T, st *pgstore.Store, user any, userAgent, remoteAddr string) *http.Cookie {
	t.Helper()
	r := request()
	r.Header.Set("User-Agent", userAgent)
	r.RemoteAddr = remoteAddr
	s, err := st.Get(r, cookieName)
	if err != nil {
		t.Fatal(err)
	}
	s.Values["user_id"] = user
	return save(t, st, r, s)
}

// A user's sessions: listed with opaque handles, their times and client,
// the request's own marked; one ended by handle, never another user's;
// all the others ended at once.
func TestListAndEndSessions(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{RecordClient: true}, clk.hooks())
		ctx := context.Background()
		laptop := device(t, st, 42, "Firefox/140", "192.0.2.1:5000")
		clk.Advance(time.Hour)
		phone := device(t, st, 42, "Mobile Safari", "198.51.100.7:443")
		tablet := device(t, st, 42, "Chrome/150", "[2001:db8::1]:8080")
		other := device(t, st, 7, "Edge", "203.0.113.9:1")
		_, current := get(t, st, laptop)

		list, err := st.ListSessions(ctx, "user_id", 42, current)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("%d sessions, want 3: %+v", len(list), list)
		}
		byAgent := map[string]pgstore.SessionInfo{}
		for _, info := range list {
			byAgent[info.UserAgent] = info
			for _, c := range []*http.Cookie{laptop, phone, tablet, other} {
				if info.Handle == c.Value || strings.Contains(c.Value, info.Handle) {
					t.Fatalf("a handle is the cookie: %q", info.Handle)
				}
			}
			if _, s := get(t, st, &http.Cookie{Name: cookieName, Value: info.Handle}); !s.IsNew {
				t.Fatal("a handle sent as a cookie loads a session")
			}
		}
		l, p := byAgent["Firefox/140"], byAgent["Mobile Safari"]
		if !l.Current || p.Current || byAgent["Chrome/150"].Current {
			t.Errorf("Current: laptop %v, phone %v, tablet %v; want the laptop only", l.Current, p.Current, byAgent["Chrome/150"].Current)
		}
		if l.IP != "192.0.2.1" || p.IP != "198.51.100.7" || byAgent["Chrome/150"].IP != "2001:db8::1" {
			t.Errorf("IPs %q %q %q", l.IP, p.IP, byAgent["Chrome/150"].IP)
		}
		start := clk.Now().Add(-time.Hour)
		if !l.Created.Equal(start) || !p.Created.Equal(clk.Now()) {
			t.Errorf("Created: laptop %v, phone %v; want %v and %v", l.Created, p.Created, start, clk.Now())
		}
		if !l.LastActive.Equal(start) || !p.LastActive.Equal(clk.Now()) {
			t.Errorf("LastActive: laptop %v, phone %v", l.LastActive, p.LastActive)
		}
		if want := start.Add(pgstore.DefaultMaxAge * time.Second); !l.Expires.Equal(want) {
			t.Errorf("Expires %v, want %v", l.Expires, want)
		}
		if list[0].UserAgent == "Firefox/140" {
			t.Error("the least recently active session is listed first")
		}

		// Another user's handle ends nothing of theirs.
		if ended, err := st.EndSession(ctx, "user_id", 7, p.Handle); err != nil || ended {
			t.Fatalf("EndSession with another user's handle: %v, %v", ended, err)
		}
		if _, s := get(t, st, phone); s.IsNew {
			t.Fatal("another user's handle ended the session")
		}
		if ended, err := st.EndSession(ctx, "user_id", 42, p.Handle); err != nil || !ended {
			t.Fatalf("EndSession: %v, %v", ended, err)
		}
		if _, s := get(t, st, phone); !s.IsNew {
			t.Fatal("the ended session still loads")
		}
		if ended, err := st.EndSession(ctx, "user_id", 42, p.Handle); err != nil || ended {
			t.Fatalf("EndSession again: %v, %v", ended, err)
		}

		// Sign out everywhere else.
		if n, err := st.RevokeOthers(ctx, "user_id", 42, current); err != nil || n != 1 {
			t.Fatalf("RevokeOthers: %d, %v", n, err)
		}
		list, err = st.ListSessions(ctx, "user_id", 42, current)
		if err != nil || len(list) != 1 || !list[0].Current {
			t.Fatalf("after RevokeOthers: %+v, %v", list, err)
		}
		if _, s := get(t, st, other); s.IsNew {
			t.Fatal("the other user's session went too")
		}
	})
}

// Activity moves LastActive, within TouchInterval; Regenerate records the
// client again and restarts Created; without RecordClient nothing is kept.
func TestSessionActivityAndClient(t *testing.T) {
	db := sharedDB(t, "postgres")
	clk := newClock(t, db)
	st := newTestStore(t, db, pgstore.Config{RecordClient: true, TouchInterval: time.Minute}, clk.hooks())
	ctx := context.Background()
	c := device(t, st, "ada", "UA-1", "192.0.2.1:1")
	t0 := clk.Now()
	clk.Advance(30 * time.Second)
	r, s := get(t, st, c)
	save(t, st, r, s) // within TouchInterval: nothing written
	list, _ := st.ListSessions(ctx, "user_id", "ada", nil)
	if len(list) != 1 || !list[0].LastActive.Equal(t0) {
		t.Fatalf("within TouchInterval: %+v", list)
	}
	clk.Advance(time.Minute)
	r, s = get(t, st, c)
	save(t, st, r, s) // touched
	list, _ = st.ListSessions(ctx, "user_id", "ada", nil)
	if len(list) != 1 || !list[0].LastActive.Equal(clk.Now()) {
		t.Fatalf("after a touch: LastActive %v, want %v", list[0].LastActive, clk.Now())
	}

	r, s = get(t, st, c)
	r.Header.Set("User-Agent", "UA-2")
	r.RemoteAddr = "198.51.100.2:2"
	if err := st.Regenerate(r, httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	list, _ = st.ListSessions(ctx, "user_id", "ada", nil)
	if len(list) != 1 || list[0].UserAgent != "UA-2" || list[0].IP != "198.51.100.2" || !list[0].Created.Equal(clk.Now()) {
		t.Fatalf("after Regenerate: %+v", list)
	}

	plain := newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName()})
	device(t, plain, "bob", "UA-3", "192.0.2.3:3")
	list, _ = plain.ListSessions(ctx, "user_id", "bob", nil)
	if len(list) != 1 || list[0].UserAgent != "" || list[0].IP != "" {
		t.Fatalf("without RecordClient: %+v", list)
	}
	var raw string
	if err := db.QueryRow(`SELECT sess::text FROM ` + qualified(st.SchemaName(), "user_sessions") + ` WHERE sess::text LIKE '%bob%'`).Scan(&raw); err != nil || strings.Contains(raw, "UA-3") || strings.Contains(raw, "192.0.2.3") {
		t.Fatalf("without RecordClient the row holds %s (%v)", raw, err)
	}
}

// The proxy hook decides the IP; X-Forwarded-For is never trusted by
// default.
func TestClientIPHook(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := context.Background()
	st := newTestStore(t, db, pgstore.Config{RecordClient: true})
	r := request()
	r.RemoteAddr = "10.0.0.5:1234"
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	s, _ := st.Get(r, cookieName)
	s.Values["user_id"] = 1
	save(t, st, r, s)
	if list, _ := st.ListSessions(ctx, "user_id", 1, nil); len(list) != 1 || list[0].IP != "10.0.0.5" {
		t.Fatalf("default IP: %+v", list)
	}
	hooked := newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName(), RecordClient: true,
		ClientIP: func(r *http.Request) string { return "from-proxy:" + r.Header.Get("X-Real-IP") }})
	r = request()
	r.Header.Set("X-Real-IP", "192.0.2.44")
	s, _ = hooked.Get(r, cookieName)
	s.Values["user_id"] = 2
	save(t, hooked, r, s)
	if list, _ := hooked.ListSessions(ctx, "user_id", 2, nil); len(list) != 1 || list[0].IP != "from-proxy:192.0.2.44" {
		t.Fatalf("hooked IP: %+v", list)
	}
}

// Handles are the same on every instance sharing the keys, and they work
// with HashIDs, where the table holds no IDs at all.
func TestSessionHandlesAcrossInstancesAndHashIDs(t *testing.T) {
	db := sharedDB(t, "pgx")
	ctx := context.Background()
	a := newTestStore(t, db, pgstore.Config{HashIDs: true})
	b := newTestStore(t, db, pgstore.Config{SchemaName: a.SchemaName(), HashIDs: true})
	c := device(t, a, "u", "x", "192.0.2.1:1")
	_, s := get(t, a, c)
	la, _ := a.ListSessions(ctx, "user_id", "u", s)
	lb, _ := b.ListSessions(ctx, "user_id", "u", s)
	if len(la) != 1 || len(lb) != 1 || la[0].Handle != lb[0].Handle || !la[0].Current || !lb[0].Current {
		t.Fatalf("instance a %+v, instance b %+v", la, lb)
	}
	if ended, err := b.EndSession(ctx, "user_id", "u", la[0].Handle); err != nil || !ended {
		t.Fatalf("EndSession on the other instance: %v, %v", ended, err)
	}
	if _, s := get(t, a, c); !s.IsNew {
		t.Fatal("the session survived")
	}
}

// A \u0000 or half a surrogate pair in any row, the user's own included,
// breaks neither listing nor ending.
func TestSessionsWithNULRows(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := context.Background()
	st := newTestStore(t, db, pgstore.Config{})
	c := device(t, st, 42, "", "192.0.2.1:1")
	table := qualified(st.SchemaName(), "user_sessions")
	for i, sess := range []string{`{"user_id": 42, "note": "a\u0000b"}`, `{"user_id": 9, "x": "\ud800"}`} {
		if _, err := db.Exec(`INSERT INTO `+table+` VALUES ($1, $2, now() + interval '1 day')`, fmt.Sprint("raw", i), sess); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.ListSessions(ctx, "user_id", 42, nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListSessions beside \\u0000 rows: %+v, %v", list, err)
	}
	for _, info := range list {
		if ended, err := st.EndSession(ctx, "user_id", 42, info.Handle); err != nil || !ended {
			t.Fatalf("EndSession: %v, %v", ended, err)
		}
	}
	if _, s := get(t, st, c); !s.IsNew {
		t.Fatal("the session survived")
	}
}

// Config.IndexKeys: New creates the expression index, and on 100,000
// sessions listing a user's reads it, never the whole table.
func TestSessionsUseKeyIndex(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{IndexKeys: []string{"user_id"}})
	st.AwaitIndexBuild()
	table := qualified(st.SchemaName(), "user_sessions")
	if _, err := db.Exec(`INSERT INTO ` + table + ` SELECT 's' || g, json_build_object('user_id', g % 20000, '_pgstore', json_build_object('created', 1)), now() + interval '1 day' FROM generate_series(1, 100000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`ANALYZE ` + table); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(column(t, db, `EXPLAIN `+strings.Replace(st.UserRowsSQL("user_id"), "$1", "'42'", 1)), "\n")
	if !strings.Contains(plan, "user_sessions_user_id_idx") || strings.Contains(plan, "Seq Scan") {
		t.Fatalf("listing a user's sessions does not use the index:\n%s", plan)
	}
	list, err := st.ListSessions(context.Background(), "user_id", 42, nil)
	if err != nil || len(list) != 5 {
		t.Fatalf("ListSessions on 100k rows: %d sessions, %v", len(list), err)
	}
	// A second store finds the index and makes none.
	newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName(), IndexKeys: []string{"user_id"}}).AwaitIndexBuild()
	if n := column(t, db, `SELECT indexname FROM pg_indexes WHERE schemaname = $1`, st.SchemaName()); len(n) != 3 {
		t.Fatalf("indexes %v, want the key, the expire and the primary key", n)
	}
}

// With SkipCreateTable, a key without its index is reported, not created.
func TestKeyIndexCheckedWithSkipCreateTable(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	var logs syncBuffer
	newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName(), SkipCreateTable: true, IndexKeys: []string{"user_id"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "has no index") || !strings.Contains(logs.String(), "CREATE INDEX CONCURRENTLY") {
		t.Fatalf("no warning naming the statement: %s", logs.String())
	}
}

// Sessions Node created are listed and can be ended: Node then finds its
// user logged out.
func TestSessionsListNodeSessions(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	db := sharedDB(t, "postgres")
	st := newExpressStore(t, db, schema, []string{newSecret})
	ctx := context.Background()
	cookie, _ := node.login(t, "alice")
	_, s := goGet(t, st, cookie)
	list, err := st.ListSessions(ctx, "user", "alice", nil)
	if err != nil || len(list) != 1 {
		t.Fatalf("Node's session not listed: %+v, %v", list, err)
	}
	if list[0].LastActive.IsZero() || list[0].Expires.IsZero() || !list[0].Created.IsZero() {
		t.Errorf("Node's session: %+v (want LastActive and Expires from its row, no Created)", list[0])
	}
	if l2, _ := st.ListSessions(ctx, "user", "alice", s); len(l2) != 1 || !l2[0].Current {
		t.Errorf("Current not marked for Node's session: %+v", l2)
	}
	if ended, err := st.EndSession(ctx, "user", "alice", list[0].Handle); err != nil || !ended {
		t.Fatalf("EndSession of Node's session: %v, %v", ended, err)
	}
	if w := node.whoami(t, cookie); w.User != nil {
		t.Fatalf("Node still knows the user: %+v", w)
	}
}

// Stores starting at once on a table without the key's index: New never
// waits for the build, which runs in the background; builds that meet
// (PostgreSQL may end one of them as a deadlock) end with one valid index.
// An interrupted build left behind is dropped and built again.
func TestConcurrentKeyIndexCreation(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	table := qualified(st.SchemaName(), "user_sessions")
	if _, err := db.Exec(`INSERT INTO ` + table + ` SELECT 's' || g, json_build_object('user_id', g), now() + interval '1 day' FROM generate_series(1, 200000) g`); err != nil {
		t.Fatal(err)
	}
	cfg := pgstore.Config{SchemaName: st.SchemaName(), IndexKeys: []string{"user_id"}}
	stores := make([]*pgstore.Store, 4)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); stores[i] = newTestStore(t, db, cfg) }()
	}
	wg.Wait()
	for _, s := range stores {
		s.AwaitIndexBuild()
	}
	indexes := func() []string {
		return column(t, db, `SELECT c.relname || ' ' || i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE i.indrelid = to_regclass($1) AND i.indexprs IS NOT NULL`, table)
	}
	if got := indexes(); len(got) != 1 || got[0] != "user_sessions_user_id_idx true" {
		t.Fatalf("key indexes after stores started at once: %v", got)
	}

	// An interrupted build leaves an invalid index: the next store
	// replaces it.
	if _, err := db.Exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass($1)`,
		qualified(st.SchemaName(), "user_sessions_user_id_idx")); err != nil {
		t.Fatal(err)
	}
	newTestStore(t, db, cfg).AwaitIndexBuild()
	if got := indexes(); len(got) != 1 || got[0] != "user_sessions_user_id_idx true" {
		t.Fatalf("key indexes after an interrupted build: %v", got)
	}
}

// An index name another relation has is not touched: the store's index
// gets a name of its own. Keys whose text needs escaping are found again.
func TestKeyIndexNames(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	a := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: "t", IndexKeys: []string{"a_b"}})
	a.AwaitIndexBuild()
	b := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: "t_a", IndexKeys: []string{"b"}})
	b.AwaitIndexBuild()
	for _, tbl := range []string{"t", "t_a"} {
		if got := column(t, db, `SELECT indisvalid::text FROM pg_index WHERE indrelid = to_regclass($1) AND indexprs IS NOT NULL`, qualified(schema, tbl)); len(got) != 1 || got[0] != "true" {
			t.Fatalf("table %s: key indexes %v", tbl, got)
		}
	}
	for _, key := range []string{`a\b`, `it's`, strings.Repeat("k", 60)} {
		s := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: strings.Repeat("é", 21), IndexKeys: []string{key}})
		s.AwaitIndexBuild()
		var logs syncBuffer
		again := newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: strings.Repeat("é", 21), IndexKeys: []string{key},
			SkipCreateTable: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		again.AwaitIndexBuild()
		if strings.Contains(logs.String(), "has no index") {
			t.Fatalf("key %q: its index is not found again: %s", key, logs.String())
		}
	}
}

// LastActive follows activity with AbsoluteTimeout too, whose cap stops
// the expiry from moving, and is never in the future after the default
// lifetime is shortened.
func TestLastActiveEdges(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := context.Background()
	clk := newClock(t, db)
	st := newTestStore(t, db, pgstore.Config{AbsoluteTimeout: 8 * time.Hour}, clk.hooks())
	c := device(t, st, 1, "UA", "192.0.2.1:1")
	for range 6 {
		clk.Advance(time.Hour)
		r, s := get(t, st, c)
		save(t, st, r, s)
	}
	if l, _ := st.ListSessions(ctx, "user_id", 1, nil); len(l) != 1 || clk.Now().Sub(l[0].LastActive) > time.Minute {
		t.Fatalf("with AbsoluteTimeout: LastActive %v, now %v", l[0].LastActive, clk.Now())
	}

	plain := newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName()}, clk.hooks())
	device(t, plain, 2, "UA", "192.0.2.1:1")
	o := pgstore.DefaultOptions()
	o.MaxAge = 7 * 24 * 3600
	shorter := newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName(), Options: o}, clk.hooks())
	if l, _ := shorter.ListSessions(ctx, "user_id", 2, nil); len(l) != 1 || l[0].LastActive.After(clk.Now()) {
		t.Fatalf("after a shorter MaxAge: LastActive %v, now %v", l[0].LastActive, clk.Now())
	}
}

// A handle listed under the old key ends the session on an instance that
// has rotated its keys (and keeps the old one in RetiredKeys).
func TestHandlesAcrossKeyRotation(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := context.Background()
	old := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1}})
	rotated := newTestStore(t, db, pgstore.Config{SchemaName: old.SchemaName(), KeyPairs: [][]byte{hashKey2},
		RetiredKeys: []pgstore.KeyPair{{HashKey: hashKey1}}})
	device(t, old, 42, "UA", "192.0.2.1:1")
	device(t, old, 42, "UA", "192.0.2.1:1")
	l, _ := old.ListSessions(ctx, "user_id", 42, nil)
	if ended, err := rotated.EndSession(ctx, "user_id", 42, l[0].Handle); err != nil || !ended {
		t.Fatalf("old handle on the rotated instance: %v, %v", ended, err)
	}
	if l, _ = rotated.ListSessions(ctx, "user_id", 42, nil); len(l) != 1 {
		t.Fatalf("%d sessions left, want 1", len(l))
	}
}

// What a ClientIP hook returns is cut to an address's length, and keys
// that are not UTF-8 are refused with ErrEncode.
func TestClientDataBounds(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := context.Background()
	st := newTestStore(t, db, pgstore.Config{RecordClient: true,
		ClientIP: func(r *http.Request) string { return r.Header.Get("X-Forwarded-For") }})
	r := request()
	r.Header.Set("X-Forwarded-For", strings.Repeat("203.0.113.1, ", 5000))
	r.Header.Set("User-Agent", strings.Repeat("é", 400))
	s, _ := st.Get(r, cookieName)
	s.Values["user_id"] = 1
	save(t, st, r, s)
	l, err := st.ListSessions(ctx, "user_id", 1, nil)
	if err != nil || len(l) != 1 || len(l[0].IP) > 64 || len(l[0].UserAgent) > 512 || !utf8.ValidString(l[0].UserAgent) {
		t.Fatalf("client data not bounded: %d-byte IP, %d-byte user agent, %v", len(l[0].IP), len(l[0].UserAgent), err)
	}
	if _, err := st.ListSessions(ctx, "a\xff", 1, nil); !errors.Is(err, pgstore.ErrEncode) {
		t.Fatalf("ListSessions with a key that is not UTF-8: %v", err)
	}
	if _, err := st.Revoke(ctx, "a\xff", 1); !errors.Is(err, pgstore.ErrEncode) {
		t.Fatalf("Revoke with a key that is not UTF-8: %v", err)
	}
}
