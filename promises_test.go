package pgstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Regression tests for promises an outside review found broken. Each is
// named after the bug it pins.

// A request loads a session, another logs it out (or Revoke deletes it,
// or it expires), then the first regenerates it: the old values must not
// come back under a new ID.
func TestRegenerateResurrectsDeletedSession(t *testing.T) {
	ends := map[string]func(t *testing.T, st *pgstore.Store, clk *clock, c *http.Cookie){
		"logout": func(t *testing.T, st *pgstore.Store, _ *clock, c *http.Cookie) {
			r, s := get(t, st, c)
			s.Options.MaxAge = -1
			save(t, st, r, s)
		},
		"revoke": func(t *testing.T, st *pgstore.Store, _ *clock, _ *http.Cookie) {
			if n, err := st.Revoke(context.Background(), "user", "alice"); err != nil || n != 1 {
				t.Fatalf("Revoke: %d, %v", n, err)
			}
		},
		"expiry": func(t *testing.T, _ *pgstore.Store, clk *clock, _ *http.Cookie) {
			clk.Advance(pgstore.DefaultMaxAge*time.Second + time.Second)
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			eachDriver(t, func(t *testing.T, db *sql.DB) {
				clk := newClock(t, db)
				st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
				c := login(t, st, map[any]any{"user": "alice"})
				r, s := get(t, st, c)
				end(t, st, clk, c)

				w := httptest.NewRecorder()
				if err := st.Regenerate(r, w, s); !errors.Is(err, pgstore.ErrSessionNotFound) {
					t.Fatalf("Regenerate of a deleted session: %v, want ErrSessionNotFound", err)
				}
				if got := w.Result().Header.Values("Set-Cookie"); len(got) != 0 {
					t.Errorf("Regenerate set cookies %q", got)
				}
				var live int
				if err := db.QueryRow(`SELECT count(*) FROM ` + qualified(st.SchemaName(), pgstore.DefaultTableName) +
					` WHERE sess->>'user' = 'alice' AND expire >= ` + clk.fn + ` AT TIME ZONE 'UTC'`).Scan(&live); err != nil {
					t.Fatal(err)
				}
				if live != 0 {
					t.Errorf("%d live rows carry the deleted session's values", live)
				}
			})
		})
	}
}

// Two requests regenerate the same session at once: exactly one wins, and
// one session lives on.
func TestConcurrentRegenerateLeavesTwoSessions(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		for round := 0; round < 5; round++ {
			c := login(t, st, map[any]any{"round": round})
			var wg sync.WaitGroup
			errs := make([]error, 2)
			start := make(chan struct{})
			for i := range errs {
				r, s := get(t, st, c)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = st.Regenerate(r, httptest.NewRecorder(), s)
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, pgstore.ErrSessionNotFound):
					t.Fatalf("Regenerate: %v", err)
				}
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM `+qualified(st.SchemaName(), pgstore.DefaultTableName)+
				` WHERE (sess->>'round')::int = $1`, round).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if won != 1 || n != 1 {
				t.Fatalf("round %d: %d Regenerates won, %d sessions live; want 1 and 1", round, won, n)
			}
		}
	})
}

// Regenerating a session that was never saved creates it.
func TestRegenerateNewSessionCreatesIt(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		r, s := get(t, st, nil)
		s.Values["user"] = "bob"
		w := httptest.NewRecorder()
		if err := st.Regenerate(r, w, s); err != nil {
			t.Fatal(err)
		}
		c := responseCookie(w, cookieName)
		if c == nil {
			t.Fatal("no cookie")
		}
		if _, s := get(t, st, c); s.Values["user"] != "bob" {
			t.Fatalf("values %v", s.Values)
		}
	})
}

// "Sign out everywhere else" after a password change: Regenerate the
// current session, then RevokeOthers. Revoke followed by Regenerate, the
// form that used to bring the current session back, is now refused.
func TestSignOutEverywhereElse(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{HashIDs: strings.HasSuffix(t.Name(), "pgx")})
		current := login(t, st, map[any]any{"user_id": 42})
		others := []*http.Cookie{login(t, st, map[any]any{"user_id": 42}), login(t, st, map[any]any{"user_id": 42})}
		stranger := login(t, st, map[any]any{"user_id": 7})

		r, s := get(t, st, current)
		w := httptest.NewRecorder()
		if err := st.Regenerate(r, w, s); err != nil {
			t.Fatal(err)
		}
		if n, err := st.RevokeOthers(r.Context(), "user_id", 42, s); err != nil || n != 2 {
			t.Fatalf("RevokeOthers: %d, %v; want 2", n, err)
		}
		now := responseCookie(w, cookieName)
		if _, s := get(t, st, now); s.Values["user_id"] != 42 {
			t.Fatal("the current browser was logged out")
		}
		for _, c := range append(others, current) {
			if _, s := get(t, st, c); !s.IsNew {
				t.Error("an old session survived")
			}
		}
		if _, s := get(t, st, stranger); s.Values["user_id"] != 7 {
			t.Error("another user's session was revoked")
		}

		// The old form deletes the current session too; Regenerate then
		// says so instead of bringing it back.
		r, s = get(t, st, now)
		if _, err := st.Revoke(r.Context(), "user_id", 42); err != nil {
			t.Fatal(err)
		}
		if err := st.Regenerate(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrSessionNotFound) {
			t.Fatalf("Regenerate after Revoke: %v, want ErrSessionNotFound", err)
		}
		if _, err := st.RevokeOthers(r.Context(), "user_id", 42, nil); err == nil {
			t.Error("RevokeOthers with a nil session to keep: no error")
		}
	})
}

// A Regenerate that committed while "sign out everywhere else" ran moved a
// stolen session out of the DELETE's way: the old row was gone when the
// DELETE reached it, and the new one invisible to it.
func TestRevokeOthersMissesConcurrentRegenerate(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	table := qualified(st.SchemaName(), pgstore.DefaultTableName)
	victim := login(t, st, map[any]any{"user_id": 42})
	thief := login(t, st, map[any]any{"user_id": 42})

	// A transaction of its own holds the thief's row, so that the
	// Regenerate, then the DELETE, queue behind it in that order.
	ctx := ctxTimeout(t)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.Exec(`SELECT 1 FROM `+table+` WHERE sid = $1 FOR UPDATE`, decodeID(t, thief)); err != nil {
		t.Fatal(err)
	}
	tr, ts := get(t, st, thief)
	tw := httptest.NewRecorder()
	regenerated := make(chan error, 1)
	go func() { regenerated <- st.Regenerate(tr, tw, ts) }()
	waitForLockWaiters(t, db, st.SchemaName(), 1)

	vr, vs := get(t, st, victim)
	revoked := make(chan error, 1)
	go func() {
		_, err := st.RevokeOthers(vr.Context(), "user_id", 42, vs)
		revoked <- err
	}()
	waitForLockWaiters(t, db, st.SchemaName(), 2)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-regenerated; err != nil {
		t.Fatalf("Regenerate: %v", err)
	}
	if err := <-revoked; err != nil {
		t.Fatalf("RevokeOthers: %v", err)
	}
	if _, s := get(t, st, responseCookie(tw, cookieName)); !s.IsNew {
		t.Error("the session regenerated meanwhile survived RevokeOthers")
	}
	if _, s := get(t, st, victim); s.IsNew {
		t.Error("the session to keep was deleted")
	}
}

// waitForLockWaiters waits, with a bound, until n backends whose query
// names schema wait on a lock.
func waitForLockWaiters(t *testing.T, db *sql.DB, schema string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var waiting int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND position($1 in query) > 0`, schema).Scan(&waiting)
		switch {
		case err != nil:
			t.Fatalf("waiting for %d lock waiters: %v", n, err)
		case waiting >= n:
			return
		}
	}
}

// App servers whose clocks are five minutes off the database's must agree
// with it: a slow one must not load or extend a session the database
// considers expired, and a fast one must not prune live sessions or write
// expiries five minutes long.
func TestExpiryJudgedByAppServerClock(t *testing.T) {
	const maxAge = 120 // seconds: less than the skew's reach
	opts := pgstore.DefaultOptions()
	opts.MaxAge = maxAge
	for _, skew := range []time.Duration{-5 * time.Minute, 5 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			eachDriver(t, func(t *testing.T, db *sql.DB) {
				clk := newClock(t, db)
				schema := pgtest.Schema(t, db)
				right := newTestStore(t, db, pgstore.Config{SchemaName: schema, Options: opts}, clk.hooks())
				skewed := newTestStore(t, db, pgstore.Config{SchemaName: schema, Options: opts},
					pgstore.TestHooks{Now: func() time.Time { return clk.Now().Add(skew) }, DBNow: clk.fn})

				// Writes: expire is the database's now plus MaxAge.
				c := login(t, skewed, map[any]any{"user": "alice"})
				want := clk.Now().Add(maxAge * time.Second)
				if got := expireOf(t, db, schema, decodeID(t, c)); got.Sub(want).Abs() > time.Second {
					t.Errorf("skewed server wrote expire %v, want %v", got, want)
				}

				// Prune: a session with a minute left survives.
				clk.Advance(time.Minute)
				if n, err := skewed.Prune(context.Background()); err != nil || n != 0 {
					t.Errorf("Prune of live sessions: %d, %v; want 0", n, err)
				}

				// Load and the update guard: expired by the database's
				// clock is expired for every server.
				r, s := get(t, skewed, c)
				if s.IsNew {
					t.Fatal("a live session was not loaded")
				}
				clk.Advance(time.Minute + time.Second)
				s.Values["user"] = "mallory"
				if err := skewed.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrSessionNotFound) {
					t.Errorf("Save of an expired session: %v, want ErrSessionNotFound", err)
				}
				if _, s := get(t, skewed, c); !s.IsNew {
					t.Error("the skewed server loaded an expired session")
				}
				if _, s := get(t, right, c); !s.IsNew {
					t.Error("an expired session was loaded")
				}
				if n, err := skewed.Prune(context.Background()); err != nil || n != 1 {
					t.Errorf("Prune of an expired session: %d, %v; want 1", n, err)
				}
			})
		})
	}
}

// An app server whose clock stepped forward since it last read the
// database's must still not prune live sessions: the database's now()
// bounds every prune.
func TestSteppedClockPrunesLiveSessions(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		var step atomic.Int64
		st := newTestStore(t, db, pgstore.Config{}, pgstore.TestHooks{
			Now:   func() time.Time { return clk.Now().Add(time.Duration(step.Load())) },
			DBNow: clk.fn,
		})
		r, s := get(t, st, nil)
		s.Values["user"] = "alice"
		s.Options.MaxAge = 60
		save(t, st, r, s)
		step.Store(int64(10 * time.Minute))
		if n, err := st.Prune(context.Background()); err != nil || n != 0 {
			t.Errorf("Prune after a clock step: %d, %v; want 0", n, err)
		}
	})
}

// A loaded session switched from a persistent cookie to a browser-session
// cookie ("forget me when I close the browser") must send the cookie again,
// or the browser keeps the persistent one.
func TestSwitchToBrowserSessionSendsNoCookie(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"user": "alice"})
		r, s := get(t, st, c)
		s.Options.MaxAge = 0
		got := save(t, st, r, s)
		if got == nil {
			t.Fatal("no cookie: the browser keeps its persistent cookie")
		}
		if got.MaxAge != 0 || !got.Expires.IsZero() {
			t.Errorf("cookie Max-Age %d, Expires %v: want a browser-session cookie", got.MaxAge, got.Expires)
		}
		if _, s := get(t, st, got); s.Values["user"] != "alice" || s.Options.MaxAge != 0 {
			t.Errorf("after the switch: values %v, MaxAge %d", s.Values, s.Options.MaxAge)
		}
	})
}

// With a touch window as long as the session itself, no touch was ever
// due, and a user active every second was logged out.
func TestTouchWindowLongerThanSessionLogsOutActiveUser(t *testing.T) {
	cases := []struct {
		name      string
		cfg       pgstore.Config
		perMaxAge int // a per-session MaxAge set at login; 0 keeps the default
		active    time.Duration
	}{
		{"config", pgstore.Config{Options: &sessions.Options{Path: "/", MaxAge: 3}, TouchInterval: 5 * time.Second}, 0, 10 * time.Second},
		{"remember me", pgstore.Config{}, 60, 150 * time.Second},
		{"browser session", pgstore.Config{BrowserSessionTTL: 20 * time.Second, TouchInterval: time.Hour}, -2, 50 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := sharedDB(t, "postgres")
			clk := newClock(t, db)
			st := newTestStore(t, db, tc.cfg, clk.hooks())
			r, s := get(t, st, nil)
			s.Values["user"] = "alice"
			switch {
			case tc.perMaxAge > 0:
				s.Options.MaxAge = tc.perMaxAge
			case tc.perMaxAge == -2:
				s.Options.MaxAge = 0
			}
			c := save(t, st, r, s)
			for elapsed := time.Duration(0); elapsed < tc.active; elapsed += time.Second {
				clk.Advance(time.Second)
				r, s := get(t, st, c)
				if s.IsNew {
					t.Fatalf("logged out after %v of activity", elapsed+time.Second)
				}
				if nc := save(t, st, r, s); nc != nil {
					c = nc
				}
			}
		})
	}
}

// A backslash in a literal the store builds escaped its quoting on a
// connection with standard_conforming_strings off: a crafted Revoke key
// deleted every row.
func TestLiteralsAssumeStandardConformingStrings(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db := pgtest.Open(t, drv, map[string]string{"options": "-c standard_conforming_strings=off"})
			var setting string
			if err := db.QueryRow(`SHOW standard_conforming_strings`).Scan(&setting); err != nil || setting != "off" {
				t.Fatalf("standard_conforming_strings %q, %v", setting, err)
			}
			st := newTestStore(t, db, pgstore.Config{})
			login(t, st, map[any]any{"user": "alice"})
			login(t, st, map[any]any{`back\slash`: "x"})

			crafted := `\' IS NULL OR $1::text IS NOT NULL OR $2::text IS NOT NULL --`
			if n, err := st.Revoke(context.Background(), crafted, "x"); err != nil || n != 0 {
				t.Errorf("Revoke with a crafted key: %d, %v; want 0", n, err)
			}
			if n := rowCount(t, db, st.SchemaName(), pgstore.DefaultTableName); n != 2 {
				t.Fatalf("%d rows left of 2", n)
			}
			if n, err := st.Revoke(context.Background(), `back\slash`, "x"); err != nil || n != 1 {
				t.Errorf("Revoke by a key with a backslash: %d, %v; want 1", n, err)
			}
		})
	}
}

// Literals must read back as themselves under both settings.
func TestQuoteLiteralUnderBothSettings(t *testing.T) {
	db := sharedDB(t, "postgres")
	ctx := ctxTimeout(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.ExecContext(context.Background(), `RESET standard_conforming_strings`) //nolint:errcheck
	for _, setting := range []string{"on", "off"} {
		if _, err := conn.ExecContext(ctx, `SET standard_conforming_strings = `+setting); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{``, `plain`, `it's`, `a\b`, `\`, `\'`, `'\`, `\\'' OR true --`, `E'\x41'`} {
			var got string
			if err := conn.QueryRowContext(ctx, `SELECT `+pgstore.QuoteLiteral(s)).Scan(&got); err != nil {
				t.Errorf("%s: %q: %v", setting, s, err)
			} else if got != s {
				t.Errorf("%s: %q reads back as %q", setting, s, got)
			}
		}
	}
}

// A MaxAge above about 292 years overflowed time.Duration: the row was
// written already expired, the cookie said Max-Age=1, and Save said nil.
func TestMaxAgeOverflowWritesExpiredRow(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("MaxAge, an int, cannot exceed MaxMaxAge here")
	}
	db := sharedDB(t, "postgres")
	bound := pgstore.MaxMaxAge // through a variable: converting the constant would not compile where int has 32 bits
	largest := int(bound)
	opts := pgstore.DefaultOptions()
	opts.MaxAge = largest + 1
	_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey1}, Options: opts})
	if !errors.Is(err, pgstore.ErrConfig) || !strings.Contains(err.Error(), "MaxAge") {
		t.Errorf("New with MaxAge over 100 years: %v", err)
	}

	st := newTestStore(t, db, pgstore.Config{})
	for _, maxAge := range []int{300 * largest / 100, largest + 1} {
		r, s := get(t, st, nil)
		s.Values["user"] = "alice"
		s.Options.MaxAge = maxAge
		w := httptest.NewRecorder()
		if err := st.Save(r, w, s); !errors.Is(err, pgstore.ErrConfig) {
			t.Errorf("Save with MaxAge %d: %v, want ErrConfig", maxAge, err)
		}
		if err := st.Regenerate(r, w, s); !errors.Is(err, pgstore.ErrConfig) {
			t.Errorf("Regenerate with MaxAge %d: %v, want ErrConfig", maxAge, err)
		}
		if len(w.Result().Cookies()) != 0 {
			t.Error("a cookie was set")
		}
	}
	if n := rowCount(t, db, st.SchemaName(), pgstore.DefaultTableName); n != 0 {
		t.Fatalf("%d rows written", n)
	}

	// The largest allowed MaxAge works, in the row and the cookie.
	r, s := get(t, st, nil)
	s.Values["user"] = "alice"
	s.Options.MaxAge = largest
	c := save(t, st, r, s)
	if c == nil || c.MaxAge != largest {
		t.Fatalf("cookie %v", c)
	}
	if _, s := get(t, st, c); s.Values["user"] != "alice" {
		t.Error("a session with the largest MaxAge was not loaded")
	}
}

// A row whose stored lifetime is above MaxMaxAge (Node, or an older
// version, wrote it) loaded with that MaxAge, and every Save then failed.
func TestLoadedMaxAgeAboveBoundCannotBeSaved(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	c := login(t, st, map[any]any{"user": "alice"})
	if _, err := db.Exec(`UPDATE `+qualified(st.SchemaName(), pgstore.DefaultTableName)+
		` SET sess = jsonb_set(sess::jsonb, '{_pgstore,maxAge}', '4000000000')::json WHERE sid = $1`, decodeID(t, c)); err != nil {
		t.Fatal(err)
	}
	r, s := get(t, st, c)
	if int64(s.Options.MaxAge) != pgstore.MaxMaxAge {
		t.Errorf("loaded MaxAge %d, want it clamped to %d", s.Options.MaxAge, pgstore.MaxMaxAge)
	}
	s.Values["n"] = 1
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// GobCodec accepted the reserved key and dropped it on load; JSONCodec
// refused it. Both refuse it now.
func TestGobCodecDropsReservedKey(t *testing.T) {
	db := sharedDB(t, "postgres")
	for _, codec := range []pgstore.Codec{pgstore.JSONCodec{}, pgstore.GobCodec{}} {
		st := newTestStore(t, db, pgstore.Config{Codec: codec})
		r, s := get(t, st, nil)
		s.Values["_pgstore"] = "mine"
		if err := st.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrEncode) {
			t.Errorf("%T: Save with the reserved key: %v, want ErrEncode", codec, err)
		}
		if n := rowCount(t, db, st.SchemaName(), pgstore.DefaultTableName); n != 0 {
			t.Errorf("%T: %d rows written", codec, n)
		}
	}
}

// A session whose name cannot be a cookie name was inserted, and net/http
// dropped its cookie: an orphan row.
func TestInvalidCookieNameLeavesOrphanRow(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	r := request()
	s, err := st.New(r, "bad name;")
	if err != nil {
		t.Fatal(err)
	}
	s.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err == nil || !strings.HasPrefix(err.Error(), "pgstore:") {
		t.Errorf("Save under an invalid cookie name: %v", err)
	}
	if err := st.Regenerate(r, w, s); err == nil {
		t.Error("Regenerate under an invalid cookie name: no error")
	}
	if n := rowCount(t, db, st.SchemaName(), pgstore.DefaultTableName); n != 0 {
		t.Errorf("%d orphan rows", n)
	}

	// A session built by hand for an existing row takes the update path.
	c := login(t, st, map[any]any{"user": "alice"})
	hand := sessions.NewSession(st, "bad name;")
	hand.ID, hand.Options = decodeID(t, c), pgstore.DefaultOptions()
	hand.Values["user"] = "mallory"
	if err := st.Save(request(), w, hand); err == nil {
		t.Error("Save of a loaded session under an invalid cookie name: no error")
	}
	if _, s := get(t, st, c); s.Values["user"] != "alice" {
		t.Errorf("the row was written: %v", s.Values)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Error("a cookie was set")
	}
}

// A row with expire = 'infinity' was judged expired and never pruned. It
// never expires: it is loaded, its changes are saved and it keeps its
// expiry; '-infinity' is expired and pruned.
func TestInfinityExpireJudgedExpired(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		table := qualified(st.SchemaName(), pgstore.DefaultTableName)
		forever := login(t, st, map[any]any{"user": "admin"})
		never := login(t, st, map[any]any{"user": "ghost"})
		for c, v := range map[*http.Cookie]string{forever: "infinity", never: "-infinity"} {
			if _, err := db.Exec(`UPDATE `+table+` SET expire = $1::timestamp WHERE sid = $2`, v, decodeID(t, c)); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(10 * 365 * 24 * time.Hour)
		r, s := get(t, st, forever)
		if s.IsNew {
			t.Fatal("an 'infinity' row was not loaded")
		}
		s.Values["n"] = 1
		save(t, st, r, s)
		if _, s := get(t, st, never); !s.IsNew {
			t.Error("a '-infinity' row was loaded")
		}
		if n, err := st.Prune(context.Background()); err != nil || n != 1 {
			t.Errorf("Prune: %d, %v; want 1 (the '-infinity' row)", n, err)
		}
		var expire string
		var n int
		if err := db.QueryRow(`SELECT expire::text, (sess->>'n')::int FROM `+table+` WHERE sid = $1`, decodeID(t, forever)).Scan(&expire, &n); err != nil {
			t.Fatal(err)
		}
		if expire != "infinity" || n != 1 {
			t.Errorf("after a save: expire %s, n %d; want infinity, 1", expire, n)
		}
	})
}

// Rotating keys as KeyPairs{new, old} logs everyone out (old becomes new's
// block key). RetiredKeys says what is meant: old cookies still load and
// are re-signed with the new key at their next touch.
func TestKeyRotationTrapLogsEveryoneOut(t *testing.T) {
	db := sharedDB(t, "postgres")
	clk := newClock(t, db)
	schema := pgtest.Schema(t, db)
	old := newTestStore(t, db, pgstore.Config{SchemaName: schema}, clk.hooks())
	c := login(t, old, map[any]any{"user": "alice"})

	trap := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey2, hashKey1}}, clk.hooks())
	if _, s := get(t, trap, c); !s.IsNew {
		t.Fatal("the trap no longer logs out: update the docs that warn about it")
	}

	rotated := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey2},
		RetiredKeys: []pgstore.KeyPair{{HashKey: hashKey1}}}, clk.hooks())
	r, s := get(t, rotated, c)
	if s.Values["user"] != "alice" {
		t.Fatal("a cookie signed with a retired key was not accepted")
	}
	clk.Advance(2 * pgstore.DefaultTouchInterval)
	resigned := save(t, rotated, r, s)
	if resigned == nil {
		t.Fatal("no cookie re-signed at the touch")
	}
	decodeID(t, resigned, hashKey2) // fails the test unless signed with the new key

	// Once the old key is dropped from the environment, the same code
	// still starts.
	if st, err := pgstore.New(db, pgstore.Config{SchemaName: schema, PruneInterval: -1, KeyPairs: [][]byte{hashKey2},
		RetiredKeys: []pgstore.KeyPair{{HashKey: []byte("")}}}); err != nil {
		t.Errorf("New with an empty retired key: %v", err)
	} else {
		st.Close()
	}
	for _, bad := range []pgstore.KeyPair{{HashKey: []byte("short")}, {HashKey: hashKey1, BlockKey: []byte("odd")}, {BlockKey: blockKey1}} {
		_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey2}, RetiredKeys: []pgstore.KeyPair{bad}})
		if !errors.Is(err, pgstore.ErrConfig) || !strings.Contains(err.Error(), "RetiredKeys[0]") {
			t.Errorf("New with retired key %q: %v", bad, err)
		}
	}
}

// Rotating only the block key (one hash key, two block keys) logged
// everyone out: the first pair's signature matched, its block key made
// garbage of the ID, and the retired pair was never tried.
func TestBlockKeyRotationLogsEveryoneOut(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	blockKey2 := bytes.Repeat([]byte{4}, 32)
	old := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey1, blockKey1}})
	c := login(t, old, map[any]any{"user": "alice"})
	rotated := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey1, blockKey2},
		RetiredKeys: []pgstore.KeyPair{{HashKey: hashKey1, BlockKey: blockKey1}}})
	if _, s := get(t, rotated, c); s.Values["user"] != "alice" {
		t.Fatal("a cookie encrypted with the retired block key was not accepted")
	}
	fresh := login(t, rotated, map[any]any{"user": "bob"})
	if _, s := get(t, rotated, fresh); s.Values["user"] != "bob" {
		t.Fatal("a cookie of the current pair was not accepted")
	}
}

// Secure cookies set over plain HTTP to a host that is not loopback are
// dropped by browsers without a word: the store says so, once.
func TestSecureCookieOverPlainHTTPFailsSilently(t *testing.T) {
	db := sharedDB(t, "postgres")
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := newTestStore(t, db, pgstore.Config{Logger: logger})
	warnings := func() int { return strings.Count(logs.String(), "plain-HTTP") }
	saveAt := func(target string, tweak func(*http.Request)) {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if tweak != nil {
			tweak(r)
		}
		s, err := st.Get(r, cookieName)
		if err != nil {
			t.Fatal(err)
		}
		s.Values["n"] = 1
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatal(err)
		}
	}
	saveAt("http://localhost:8080/", nil)
	saveAt("http://127.0.0.1/", nil)
	saveAt("http://[::1]:8080/", nil)
	saveAt("https://app.example/", nil)
	for k, v := range map[string]string{
		"X-Forwarded-Proto": "https, http",
		"Forwarded":         `for=192.0.2.9;proto="https"`,
		"X-Forwarded-Ssl":   "on",
	} {
		saveAt("http://app.example/", func(r *http.Request) { r.Header.Set(k, v) })
	}
	if n := warnings(); n != 0 {
		t.Fatalf("%d warnings for requests browsers accept Secure cookies on:\n%s", n, logs.String())
	}
	saveAt("http://app.example/", nil)
	saveAt("http://192.0.2.1:8080/", nil)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "Cookie") && strings.Contains(logs.String(), "MTc") {
		t.Error("the warning carries a cookie value")
	}
}

// Open used database/sql's defaults: 2 idle connections, so under
// concurrency most requests opened a new connection.
func TestOpenPoolUntuned(t *testing.T) {
	schema := pgtest.Schema(t, sharedDB(t, "postgres"))
	dsn, err := pgtest.DSN()
	if err != nil {
		t.Fatal(err)
	}
	st, err := pgstore.Open(dsn, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := st.DB()
	if got := db.Stats().MaxOpenConnections; got != pgstore.OpenMaxConns {
		t.Errorf("MaxOpenConnections %d, want %d", got, pgstore.OpenMaxConns)
	}
	ctx := ctxTimeout(t)
	conns := make([]*sql.Conn, 10)
	for i := range conns {
		if conns[i], err = db.Conn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if idle := db.Stats().Idle; idle != len(conns) {
		t.Errorf("%d connections kept idle after 10 were in use; want 10", idle)
	}
}
