package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgcluster"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Regenerate moves the data to a fresh ID in one round trip; the old
// cookie then gives an empty session (ASVS 7.2.4).
func TestRegenerate(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			for i := 0; i < 3; i++ { // warm the statement on the pool's connections
				c := login(t, st, map[any]any{"warm": i})
				r, s := get(t, st, c)
				if err := st.Regenerate(r, httptest.NewRecorder(), s); err != nil {
					t.Fatal(err)
				}
			}
			old := login(t, st, map[any]any{"cart": "book"})
			r, s := get(t, st, old)
			s.Values["user"] = "alice"
			w := httptest.NewRecorder()
			proxy.Reset()
			if err := st.Regenerate(r, w, s); err != nil {
				t.Fatal(err)
			}
			if n := proxy.RoundTrips(); n != 1 {
				t.Errorf("Regenerate: %d round trips, want 1 (%q)", n, proxy.Statements())
			}
			fresh := responseCookie(w, cookieName)
			if fresh == nil || decodeID(t, fresh) == decodeID(t, old) || s.ID != decodeID(t, fresh) {
				t.Fatal("no new ID")
			}
			if _, s := get(t, st, old); !s.IsNew || len(s.Values) != 0 {
				t.Errorf("the old cookie still loads %v", s.Values)
			}
			if _, s := get(t, st, fresh); s.Values["user"] != "alice" || s.Values["cart"] != "book" {
				t.Errorf("data did not move: %v", s.Values)
			}
			if _, ok := row(t, db, st.SchemaName(), decodeID(t, old)); ok {
				t.Error("old row still there")
			}
			// Saving after Regenerate in the same request updates the new row.
			s.Values["role"] = "admin"
			save(t, st, r, s)
			if _, s := get(t, st, fresh); s.Values["role"] != "admin" {
				t.Errorf("save after regenerate: %v", s.Values)
			}
			// Regenerating a brand-new session just creates it.
			r, s = get(t, st, nil)
			s.Values["user"] = "bob"
			w = httptest.NewRecorder()
			if err := st.Regenerate(r, w, s); err != nil {
				t.Fatal(err)
			}
			if _, s := get(t, st, responseCookie(w, cookieName)); s.Values["user"] != "bob" {
				t.Error("regenerate of a new session did not store it")
			}
		})
	}
}

// Revoke deletes every session whose value at a key equals a value (ASVS
// 7.4.2), in one statement, for each JSON type.
func TestRevoke(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		var alice, bob []*http.Cookie
		for i := 0; i < 3; i++ {
			alice = append(alice, login(t, st, map[any]any{"user_id": 42, "name": "alice", "admin": true}))
			bob = append(bob, login(t, st, map[any]any{"user_id": 7, "name": "bob", "admin": false}))
		}
		// A row written by another program, and a non-object row.
		if _, err := db.Exec(`INSERT INTO ` + qualified(st.SchemaName(), "user_sessions") + ` VALUES
			('node1', '{"cookie":{},"user_id":42}', now() + interval '1 day'),
			('odd', '"just a string"', now() + interval '1 day')`); err != nil {
			t.Fatal(err)
		}
		n, err := st.Revoke(context.Background(), "user_id", 42)
		if err != nil || n != 4 {
			t.Fatalf("Revoke(user_id, 42): %d, %v; want 4", n, err)
		}
		for _, c := range alice {
			if _, s := get(t, st, c); !s.IsNew {
				t.Error("a revoked session still loads")
			}
		}
		for _, c := range bob {
			if _, s := get(t, st, c); s.Values["name"] != "bob" {
				t.Error("Revoke took someone else's session")
			}
		}
		if n, err := st.Revoke(context.Background(), "name", "bob"); err != nil || n != 3 {
			t.Errorf("Revoke by string: %d, %v", n, err)
		}
		login(t, st, map[any]any{"admin": false})
		if n, err := st.Revoke(context.Background(), "admin", false); err != nil || n != 1 {
			t.Errorf("Revoke by bool: %d, %v", n, err)
		}
		if n, err := st.Revoke(context.Background(), "x'; DROP TABLE user_sessions; --", "v"); err != nil || n != 0 {
			t.Errorf("Revoke with a hostile key: %d, %v", n, err)
		}
		for _, bad := range []any{nil, []int{1}, map[string]any{}, "a\x00"} {
			if _, err := st.Revoke(context.Background(), "user_id", bad); !errors.Is(err, pgstore.ErrEncode) {
				t.Errorf("Revoke by %#v: %v", bad, err)
			}
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 1 {
			t.Errorf("%d rows left, want the odd one", n)
		}
	})
}

// HashIDs keeps only a hash of the ID in the table, so a leaked sid is not
// a session.
func TestHashIDs(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{HashIDs: true})
		c := login(t, st, map[any]any{"user": "alice"})
		id := decodeID(t, c)
		if _, ok := row(t, db, st.SchemaName(), id); ok {
			t.Fatal("the raw ID is stored")
		}
		var sid string
		if err := db.QueryRow(`SELECT sid FROM ` + qualified(st.SchemaName(), "user_sessions")).Scan(&sid); err != nil {
			t.Fatal(err)
		}
		if sid != pgstore.HashID(id) {
			t.Fatalf("stored sid %q, want the hash of the ID", sid)
		}
		r, s := get(t, st, c)
		if s.Values["user"] != "alice" {
			t.Fatal("session does not load with HashIDs")
		}
		s.Values["n"] = 1
		save(t, st, r, s)
		// Even with the signing key, a cookie built from the leaked sid
		// loads nothing.
		sc := securecookie.New(hashKey1, nil).SetSerializer(securecookie.NopEncoder{})
		forged, err := sc.Encode(cookieName, []byte(sid))
		if err != nil {
			t.Fatal(err)
		}
		if _, s := get(t, st, &http.Cookie{Name: cookieName, Value: forged}); !s.IsNew {
			t.Fatal("a cookie made from the stored sid loaded the session")
		}
		// Logout, regenerate and revoke work on hashed rows.
		r, s = get(t, st, c)
		w := httptest.NewRecorder()
		if err := st.Regenerate(r, w, s); err != nil {
			t.Fatal(err)
		}
		if _, ok := row(t, db, st.SchemaName(), pgstore.HashID(id)); ok {
			t.Error("Regenerate left the old hashed row")
		}
		if n, err := st.Revoke(context.Background(), "user", "alice"); err != nil || n != 1 {
			t.Errorf("Revoke: %d, %v", n, err)
		}
	})
}

// Bad input: none of these may panic, write a row, or lose an existing
// session.
func TestBadCookies(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		other := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey2}})
		existing := login(t, st, map[any]any{"user": "alice"})
		forOtherName, _ := securecookie.New(hashKey1, nil).SetSerializer(securecookie.NopEncoder{}).Encode("other", []byte(decodeID(t, existing)))
		signedByOther := login(t, other, map[any]any{"x": 1})
		cases := map[string]string{
			"empty":               "",
			"garbage":             "garbage",
			"8 KB":                strings.Repeat("A", 8192),
			"bad base64":          "!!!***%%%",
			"wrong signature":     existing.Value[:len(existing.Value)-6] + "AAAAAA",
			"other key":           signedByOther.Value,
			"other cookie name":   forOtherName,
			"express format":      "s%3AabcDEF.signature",
			"jwt":                 "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
			"sql":                 "'; DROP TABLE user_sessions; --",
			"raw id":              decodeID(t, existing),
			"base64 of raw id":    base64.URLEncoding.EncodeToString([]byte(decodeID(t, existing))),
			"unicode":             "séssion☃",
			"truncated":           existing.Value[:len(existing.Value)/2],
			"doubled":             existing.Value + existing.Value,
			"pipe-separated fake": base64.URLEncoding.EncodeToString([]byte("1|2|3")),
		}
		before := rowCount(t, db, st.SchemaName(), "user_sessions")
		for name, value := range cases {
			r := request(&http.Cookie{Name: cookieName, Value: value})
			s, err := st.Get(r, cookieName)
			if err != nil || s == nil || !s.IsNew || len(s.Values) != 0 {
				t.Errorf("%s: session %v, err %v", name, s, err)
				continue
			}
			w := httptest.NewRecorder()
			if err := st.Save(r, w, s); err != nil || responseCookie(w, cookieName) != nil {
				t.Errorf("%s: saving the empty session: %v", name, err)
			}
		}
		if after := rowCount(t, db, st.SchemaName(), "user_sessions"); after != before {
			t.Errorf("bad cookies changed the row count from %d to %d", before, after)
		}
		if _, s := get(t, st, existing); s.Values["user"] != "alice" {
			t.Error("the existing session was lost")
		}
	})
}

// SQL metacharacters and odd text in keys and values are data.
func TestHostileValues(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		values := map[any]any{
			"'; DROP TABLE user_sessions; --": "x",
			"quote":                           `" ' \ ; -- /* */ $1 $$`,
			"json":                            `{"_pgstore":{"created":1},"cookie":{}}`,
			"emoji":                           "😀 \u2028 \u2029",
			"_pgstore2":                       1,
		}
		c := login(t, st, values)
		_, s := get(t, st, c)
		for k, v := range values {
			if s.Values[k] != v {
				t.Errorf("%q: got %#v", k, s.Values[k])
			}
		}
	})
}

// A session over MaxLength is refused whole, and the stored one survives.
func TestMaxLength(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{MaxLength: 1024})
		c := login(t, st, map[any]any{"user": "alice"})
		r, s := get(t, st, nil)
		s.Values["blob"] = strings.Repeat("x", 2000)
		w := httptest.NewRecorder()
		if err := st.Save(r, w, s); !errors.Is(err, pgstore.ErrTooLarge) || responseCookie(w, cookieName) != nil {
			t.Fatalf("new oversized session: %v", err)
		}
		r, s = get(t, st, c)
		s.Values["blob"] = strings.Repeat("x", 2000)
		if err := st.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrTooLarge) || !strings.Contains(err.Error(), "MaxLength is 1024") {
			t.Fatalf("oversized update: %v", err)
		}
		if _, s := get(t, st, c); s.Values["user"] != "alice" || s.Values["blob"] != nil {
			t.Fatalf("stored session changed: %v", s.Values)
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 1 {
			t.Fatalf("%d rows", n)
		}
		// The default is 64 KiB.
		def := newTestStore(t, db, pgstore.Config{})
		r, s = get(t, def, nil)
		s.Values["blob"] = strings.Repeat("x", 70_000)
		if err := def.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrTooLarge) {
			t.Fatalf("70 kB with the default limit: %v", err)
		}
	})
}

// Concurrent requests on one session: last write wins, one valid row, no
// error but the documented sentinel.
func TestParallelSavesOnOneSession(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"n": -1})
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := request(c)
				s, err := st.Get(r, cookieName)
				if err != nil {
					errs <- err
					return
				}
				s.Values["n"] = i
				s.Values[fmt.Sprintf("k%d", i)] = true
				if err := st.Save(r, httptest.NewRecorder(), s); err != nil && !errors.Is(err, pgstore.ErrSessionNotFound) {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("parallel save: %v", err)
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 1 {
			t.Fatalf("%d rows", n)
		}
		_, s := get(t, st, c)
		n, ok := s.Values["n"].(int)
		if !ok || n < 0 || n >= 50 || s.Values[fmt.Sprintf("k%d", n)] != true {
			t.Fatalf("final session is not one request's whole write: %v", s.Values)
		}
	})
}

// QueryTimeout bounds every query: a stuck database does not pin the
// request forever.
func TestQueryTimeout(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{QueryTimeout: 300 * time.Millisecond})
		c := login(t, st, map[any]any{"n": 1})
		ctx := ctxTimeout(t)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `LOCK TABLE `+qualified(st.SchemaName(), "user_sessions")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		s, err := st.Get(request(c), cookieName)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Fatalf("Get blocked for %v", elapsed)
		}
		if err == nil || s == nil || !s.IsNew {
			t.Fatalf("Get on a locked table: %v", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Config.QueryTimeout") {
			t.Errorf("timeout error does not say what happened: %v", err)
		}
	})
}

// New against a server that is not there fails fast with a message that
// says what was tried; it never hangs past the caller's context.
func TestNewUnreachable(t *testing.T) {
	// Refused: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dsn := "postgres://app:secret@" + addr + "/appdb?sslmode=disable"
	_, err = pgstore.Open(dsn, pgstore.Config{KeyPairs: [][]byte{hashKey1}})
	if err == nil || !strings.Contains(err.Error(), "connect to database") || !strings.Contains(err.Error(), addr[strings.LastIndex(addr, ":")+1:]) ||
		!strings.Contains(err.Error(), "dbname=appdb") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open on a closed port: %v", err)
	}

	// Silent: a listener that accepts and never answers. The caller's
	// context bounds the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		silent.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pgstore.OpenContext(ctx, "postgres://app@"+silent.Addr().String()+"/appdb?sslmode=disable", pgstore.Config{KeyPairs: [][]byte{hashKey1}})
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("OpenContext took %v with a 500ms context", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "connect to database") {
		t.Errorf("OpenContext on a silent server: %v", err)
	}
}

// PostgreSQL restarted in the middle of load: requests during the outage
// fail with errors (no panics), every request afterwards succeeds without
// restarting the app, and every session written before still loads.
func TestDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own cluster")
	}
	cluster, err := pgcluster.StartCluster()
	if err != nil {
		pgtest.SkipOrFail(t, fmt.Errorf("start a throwaway cluster: %w", err))
	}
	t.Cleanup(cluster.Remove)
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			db := pgtest.OpenDSN(t, drv, cluster.DSN())
			db.SetMaxIdleConns(4)
			st := newTestStore(t, db, pgstore.Config{QueryTimeout: 2 * time.Second})
			var cookies []*http.Cookie
			for i := 0; i < 20; i++ {
				cookies = append(cookies, login(t, st, map[any]any{"i": i}))
			}
			// Load on a few goroutines through the outage. The test moves on
			// at events, not after sleeps: the restart once the load has
			// served warmUp requests, the start once a request failed with
			// the database down.
			const warmUp = 40
			var stop, down atomic.Bool
			var failures, successes atomic.Int64
			warmed, failed := make(chan struct{}), make(chan struct{})
			var failedOnce sync.Once
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; !stop.Load(); i++ {
						c := cookies[(g+i)%len(cookies)]
						r := request(c)
						s, err := st.Get(r, cookieName)
						if s == nil {
							t.Error("nil session")
							return
						}
						if err == nil && !s.IsNew {
							s.Values["hits"] = i
							err = st.Save(r, httptest.NewRecorder(), s)
						}
						if err != nil {
							failures.Add(1)
							if down.Load() {
								failedOnce.Do(func() { close(failed) })
							}
						} else if successes.Add(1) == warmUp {
							close(warmed)
						}
					}
				}(g)
			}
			// await fails the test when ch is not closed in time; the load
			// is stopped first, so that no goroutine outlives the test.
			await := func(ch <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(time.Minute):
					stop.Store(true)
					wg.Wait()
					t.Fatalf("%s within a minute (%d successes, %d failures)", what, successes.Load(), failures.Load())
				}
			}
			await(warmed, "the load did not serve its first requests")
			down.Store(true)
			if err := cluster.Stop(); err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatal(err)
			}
			await(failed, "no request failed while the database was down")
			if err := cluster.Start(); err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatal(err)
			}
			stop.Store(true)
			wg.Wait()
			if failures.Load() == 0 || successes.Load() == 0 {
				t.Fatalf("load saw %d failures and %d successes", failures.Load(), successes.Load())
			}
			// After the restart every request succeeds and every session loads.
			for round := 0; round < 3; round++ {
				for i, c := range cookies {
					r := request(c)
					s, err := st.Get(r, cookieName)
					if err != nil || s.IsNew || s.Values["i"] != i {
						t.Fatalf("after restart, session %d: new %v, err %v", i, s.IsNew, err)
					}
					s.Values["after"] = round
					if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
						t.Fatalf("after restart, save %d: %v", i, err)
					}
				}
			}
			login(t, st, map[any]any{"new": true})
		})
	}
}

// No raw session ID or cookie value ever reaches the logs.
func TestLogsCarryNoSecrets(t *testing.T) {
	db := sharedDB(t, "postgres")
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := newClock(t, db)
	st := newTestStore(t, db, pgstore.Config{Logger: logger}, clk.hooks())

	var secrets []string
	c := login(t, st, map[any]any{"user": "alice"})
	secrets = append(secrets, c.Value, decodeID(t, c))
	get(t, st, &http.Cookie{Name: cookieName, Value: "garbage-cookie-value"}) // rejected cookie
	secrets = append(secrets, "garbage-cookie-value")
	slow, s := get(t, st, c)
	lr, ls := get(t, st, c)
	ls.Options.MaxAge = -1
	save(t, st, lr, ls)
	s.Values["x"] = 1
	_ = st.Save(slow, httptest.NewRecorder(), s) // gone: logged at debug
	c2 := login(t, st, map[any]any{"user": "bob"})
	secrets = append(secrets, c2.Value, decodeID(t, c2))
	clk.Advance(31 * 24 * time.Hour)
	get(t, st, c2) // expired: logged at debug
	if _, err := st.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Revoke(context.Background(), "user", "bob"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "session=") {
		t.Fatalf("expected debug events naming sessions by hash, got:\n%s", out)
	}
	if !strings.Contains(out, pgstore.LogID(decodeID(t, c2))) {
		t.Errorf("events do not carry the short hash of the ID:\n%s", out)
	}
	if !strings.Contains(out, "pgstore: session expired") {
		t.Errorf("the expired row's load was not logged:\n%s", out)
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}

// Connections cut under the pool (a failover, a proxy restart, a NAT
// timeout) cost no failed requests: a statement whose connection turns out
// dead is retried on another.
func TestCutConnectionsAreRetried(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			db.SetMaxIdleConns(2)
			st := newTestStore(t, db, pgstore.Config{})
			c := login(t, st, map[any]any{"n": 0})
			for i := 1; i <= 5; i++ {
				proxy.DropConnections()
				r := request(c)
				s, err := st.Get(r, cookieName)
				if err != nil || s.IsNew {
					t.Fatalf("Get after a cut: new %v, %v", s.IsNew, err)
				}
				proxy.DropConnections()
				s.Values["n"] = i
				if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
					t.Fatalf("Save after a cut: %v", err)
				}
				proxy.DropConnections()
				login(t, st, map[any]any{"new": i})
			}
		})
	}
}

// A logout whose Get failed (the database was down, so the session handed
// out was new and empty) still ends the session named by the cookie, or
// reports that it could not: it never claims success while the row lives.
func TestLogoutAfterFailedGet(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"user": "alice"})
		r := request(c)
		s := sessions.NewSession(st, cookieName) // what Get returns on a database error
		s.Options = pgstore.DefaultOptions()
		s.IsNew = true
		s.Options.MaxAge = -1
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatal(err)
		}
		if _, ok := row(t, db, st.SchemaName(), decodeID(t, c)); ok {
			t.Fatal("logout left the row behind")
		}
	})
}
