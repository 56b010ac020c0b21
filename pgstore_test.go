package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

var _ sessions.Store = (*pgstore.Store)(nil)

// The cookie carries only a signed ID of 32 random bytes.
func TestCookieCarriesOnlySignedID(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"user": "alice-secret-name"})

		if strings.Contains(c.Value, "alice") {
			t.Errorf("cookie %q carries a value", c.Value)
		}
		id := decodeID(t, c)
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(raw) != 32 {
			t.Fatalf("ID %q is not 32 bytes of base64url: %d bytes, %v", id, len(raw), err)
		}
		schema := st.SchemaName()
		if _, ok := row(t, db, schema, id); !ok {
			t.Errorf("no row under the cookie's ID")
		}
		// Tampering with the signature is rejected, with no query.
		bad := *c
		bad.Value = c.Value[:len(c.Value)-2] + "AA"
		_, s := get(t, st, &bad)
		if !s.IsNew || len(s.Values) != 0 {
			t.Errorf("tampered cookie loaded a session")
		}
		// The defaults: HttpOnly, SameSite Lax, Secure, Path /, 30 days.
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != 30*24*3600 {
			t.Errorf("cookie attributes %+v", c)
		}
	})
}

func TestCookieEncryptedWithBlockKey(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1, blockKey1}})
		c := login(t, st, map[any]any{"n": 1})
		id := decodeID(t, c, hashKey1, blockKey1)
		if _, ok := row(t, db, st.SchemaName(), id); !ok {
			t.Fatal("no row under the decrypted ID")
		}
		payload, _ := base64.URLEncoding.DecodeString(c.Value)
		if strings.Contains(string(payload), id) || strings.Contains(string(payload), base64.URLEncoding.EncodeToString([]byte(id))) {
			t.Errorf("the ID is readable in an encrypted cookie")
		}
	})
}

// Rotation. Cookies made with any listed pair decode; new cookies
// use the first pair.
func TestKeyRotation(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		schema := pgtest.Schema(t, db)
		old := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey1}})
		rotated := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey2, nil, hashKey1}})

		oldCookie := login(t, old, map[any]any{"user": "alice"})
		_, s := get(t, rotated, oldCookie)
		if s.IsNew || s.Values["user"] != "alice" {
			t.Fatalf("rotated store did not read a cookie signed with the old key: %v", s.Values)
		}
		newCookie := login(t, rotated, map[any]any{"user": "bob"})
		decodeID(t, newCookie, hashKey2) // signed with the first pair
		if _, s := get(t, old, newCookie); !s.IsNew {
			t.Errorf("a store with only the old key read a cookie signed with the new key")
		}
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

// An RNG failure is an error, never a weaker ID.
func TestRandomFailureIsAnError(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{}, pgstore.TestHooks{Rand: failingReader{}})
		r, s := get(t, st, nil)
		s.Values["user"] = "alice"
		w := httptest.NewRecorder()
		err := st.Save(r, w, s)
		if err == nil || !strings.Contains(err.Error(), "entropy exhausted") || !strings.HasPrefix(err.Error(), "pgstore:") {
			t.Fatalf("Save with a failing random source: %v", err)
		}
		if n := rowCount(t, db, st.SchemaName(), pgstore.DefaultTableName); n != 0 {
			t.Errorf("%d rows written", n)
		}
		if responseCookie(w, cookieName) != nil {
			t.Errorf("cookie set")
		}
	})
}

// No shared codec is mutated per request (antonlindstrom/pgstore
// calls MaxAge on its codecs in Save). Run under -race.
func TestConcurrentRequestsShareNoMutableState(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1, blockKey1}})
		c := login(t, st, map[any]any{"n": 0})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for j := 0; j < 10; j++ {
					r := request(c)
					s, err := st.Get(r, cookieName)
					if err != nil {
						t.Error(err)
						return
					}
					s.Options.MaxAge = 3600 * (i + 1) // per-session options must not leak
					s.Values["n"] = j
					if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
						t.Error(err)
						return
					}
					s2, _ := st.New(request(), cookieName)
					if s2.Options.MaxAge != pgstore.DefaultMaxAge {
						t.Errorf("default options changed to MaxAge %d", s2.Options.MaxAge)
					}
				}
			}(i)
		}
		wg.Wait()
	})
}

// No cookie or a bad cookie costs no query at all; a valid one
// costs exactly one round trip.
func TestGetRoundTrips(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{})
			c := login(t, st, map[any]any{"user": "alice"})
			get(t, st, c) // warm the connection's prepared statement

			for _, tc := range []struct {
				name   string
				cookie *http.Cookie
				want   int64
			}{
				{"no cookie", nil, 0},
				{"garbage", &http.Cookie{Name: cookieName, Value: "garbage"}, 0},
				{"bad signature", &http.Cookie{Name: cookieName, Value: c.Value[:len(c.Value)-4] + "AAAA"}, 0},
				{"valid", c, 1},
			} {
				proxy.Reset()
				_, s := get(t, st, tc.cookie)
				if got := proxy.RoundTrips(); got != tc.want {
					t.Errorf("%s: %d round trips, want %d (statements %q)", tc.name, got, tc.want, proxy.Statements())
				}
				if tc.want == 1 && s.Values["user"] != "alice" {
					t.Errorf("%s: values %v", tc.name, s.Values)
				}
			}
		})
	}
}

// A missing or expired row gives a new session that gets a new ID;
// the ID the client sent is never reused.
func TestMissingOrExpiredRowGetsNewID(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		schema := st.SchemaName()

		// Missing: the row was deleted behind the store's back.
		c := login(t, st, map[any]any{"user": "alice"})
		oldID := decodeID(t, c)
		if _, err := db.Exec(`DELETE FROM `+qualified(schema, "user_sessions")+` WHERE sid = $1`, oldID); err != nil {
			t.Fatal(err)
		}
		r, s := get(t, st, c)
		if !s.IsNew || s.ID != "" || len(s.Values) != 0 {
			t.Fatalf("missing row: IsNew %v ID %q values %v", s.IsNew, s.ID, s.Values)
		}
		s.Values["user"] = "mallory"
		nc := save(t, st, r, s)
		if newID := decodeID(t, nc); newID == oldID {
			t.Fatal("the client's ID was reused")
		}
		if _, ok := row(t, db, schema, oldID); ok {
			t.Fatal("a row came back under the old ID")
		}

		// Expired, not yet pruned: never loaded.
		c2 := login(t, st, map[any]any{"user": "bob"})
		clk.Advance(pgstore.DefaultMaxAge*time.Second + time.Second)
		_, s2 := get(t, st, c2)
		if !s2.IsNew || len(s2.Values) != 0 {
			t.Fatalf("expired row was loaded: %v", s2.Values)
		}
		if _, ok := row(t, db, schema, decodeID(t, c2)); !ok {
			t.Fatal("test setup: the expired row should still be in the table")
		}
	})
}

// A row loads up to and including the microsecond its expire names, and
// not one microsecond later, in a time zone other than the server's.
func TestExpiryBoundary(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{TimeZone: "America/New_York"}, clk.hooks())
		c := login(t, st, map[any]any{"user": "alice"})
		clk.Advance(pgstore.DefaultMaxAge * time.Second)
		if _, s := get(t, st, c); s.IsNew || s.Values["user"] != "alice" {
			t.Fatalf("at its expire the row did not load: IsNew %v values %v", s.IsNew, s.Values)
		}
		clk.Advance(time.Microsecond)
		if _, s := get(t, st, c); !s.IsNew || len(s.Values) != 0 {
			t.Fatalf("1µs after its expire the row loaded: %v", s.Values)
		}
	})
}

// Get uses the request's context, and on a database error returns
// a new session with the error.
func TestGetUsesRequestContextAndReturnsSessionOnError(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"user": "alice"})

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := request(c).WithContext(ctx)
		s, err := st.Get(r, cookieName)
		if err == nil || !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a cancelled request context: err %v", err)
		}
		if s == nil || !s.IsNew {
			t.Fatalf("Get returned session %v on error", s)
		}

		// A database error: the table is gone.
		if _, err := db.Exec(`DROP TABLE ` + qualified(st.SchemaName(), "user_sessions")); err != nil {
			t.Fatal(err)
		}
		s, err = st.Get(request(c), cookieName)
		if err == nil || !strings.HasPrefix(err.Error(), "pgstore: ") || errors.Is(err, pgstore.ErrCorrupt) {
			t.Errorf("Get with the table dropped: err %v", err)
		}
		if s == nil || !s.IsNew {
			t.Fatalf("Get returned session %v on a database error", s)
		}
	})
}

// Save writes only what it must.
func TestSaveWrites(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{TouchInterval: -1}, clk.hooks())
		schema := st.SchemaName()

		// New and empty: nothing.
		r, s := get(t, st, nil)
		if c := save(t, st, r, s); c != nil {
			t.Errorf("empty new session set a cookie")
		}
		if n := rowCount(t, db, schema, "user_sessions"); n != 0 {
			t.Fatalf("empty new session wrote %d rows", n)
		}

		// New with values: one row, expiring MaxAge from now.
		c := login(t, st, map[any]any{"n": 1})
		if n := rowCount(t, db, schema, "user_sessions"); n != 1 {
			t.Fatalf("%d rows", n)
		}
		id := decodeID(t, c)
		if got, want := expireOf(t, db, schema, id), clk.Now().Add(pgstore.DefaultMaxAge*time.Second); !got.Equal(want) {
			t.Errorf("expire %v, want %v", got, want)
		}

		// Loaded: an update in place that moves expire.
		clk.Advance(time.Hour)
		r, s = get(t, st, c)
		s.Values["n"] = 2
		save(t, st, r, s)
		if n := rowCount(t, db, schema, "user_sessions"); n != 1 {
			t.Fatalf("update made %d rows", n)
		}
		if got, want := expireOf(t, db, schema, id), clk.Now().Add(pgstore.DefaultMaxAge*time.Second); !got.Equal(want) {
			t.Errorf("expire after update %v, want %v", got, want)
		}
		if _, s := get(t, st, c); s.Values["n"] != 2 {
			t.Errorf("after update n = %v", s.Values["n"])
		}

		// MaxAge < 0: row deleted, cookie expired.
		r, s = get(t, st, c)
		s.Options.MaxAge = -1
		w := httptest.NewRecorder()
		if err := st.Save(r, w, s); err != nil {
			t.Fatal(err)
		}
		if _, ok := row(t, db, schema, id); ok {
			t.Error("row not deleted")
		}
		if dc := responseCookie(w, cookieName); dc == nil || dc.MaxAge >= 0 || dc.Value != "" {
			t.Errorf("logout cookie %+v", dc)
		}
		if _, s := get(t, st, c); !s.IsNew {
			t.Error("the old cookie still loads a session after logout")
		}
	})
}

// expireOf reads a row's expire as a UTC wall-clock time.
func expireOf(t *testing.T, db *sql.DB, schema, sid string) time.Time {
	t.Helper()
	var s string
	err := db.QueryRow(`SELECT to_char(expire, 'YYYY-MM-DD"T"HH24:MI:SS.US') FROM `+qualified(schema, "user_sessions")+` WHERE sid = $1`, sid).Scan(&s)
	if err != nil {
		t.Fatalf("read expire: %v", err)
	}
	tm, err := time.Parse("2006-01-02T15:04:05.999999", s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// A session logged out elsewhere is not written back (upserts
// resurrect sessions: rack-session CVE-2025-46336).
func TestSaveAfterConcurrentLogoutDoesNotResurrect(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"user": "alice"})

		slowReq, slow := get(t, st, c) // a slow request loads the session

		logoutReq, s := get(t, st, c) // another request logs out
		s.Options.MaxAge = -1
		save(t, st, logoutReq, s)

		slow.Values["cart"] = []any{"book"}
		err := st.Save(slowReq, httptest.NewRecorder(), slow)
		if !errors.Is(err, pgstore.ErrSessionNotFound) {
			t.Fatalf("Save after logout: %v, want ErrSessionNotFound", err)
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 0 {
			t.Fatalf("the logged-out session came back (%d rows)", n)
		}
		if _, s := get(t, st, c); !s.IsNew {
			t.Fatal("the old cookie loads a session again")
		}
	})
}

// Save of a loaded session with a request that did not load it (no state
// in its context) still works and still refuses to resurrect.
func TestSaveWithOtherRequest(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, map[any]any{"n": 1})
		_, s := get(t, st, c)
		s.Values["n"] = 2
		if err := st.Save(request(), httptest.NewRecorder(), s); err != nil {
			t.Fatal(err)
		}
		if _, s := get(t, st, c); s.Values["n"] != 2 {
			t.Fatalf("n = %v", s.Values["n"])
		}
		if _, err := db.Exec(`DELETE FROM ` + qualified(st.SchemaName(), "user_sessions")); err != nil {
			t.Fatal(err)
		}
		s.Values["n"] = 3
		if err := st.Save(request(), httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrSessionNotFound) {
			t.Fatalf("Save of a deleted session: %v", err)
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})
}

// Every error names the package once, at its start, whatever it wraps:
// ErrConfig, ErrEncode and ErrCorrupt (from either codec) included.
func TestErrorsSayPgstoreOnce(t *testing.T) {
	db := sharedDB(t, "postgres")
	check := func(what string, err error, target error) {
		t.Helper()
		if err == nil || !errors.Is(err, target) || !strings.HasPrefix(err.Error(), "pgstore: ") ||
			strings.Count(err.Error(), "pgstore:") != 1 {
			t.Errorf("%s: %v, want %v saying pgstore: once", what, err, target)
		}
	}
	_, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{[]byte("short")}})
	check("New with a short key", err, pgstore.ErrConfig)
	for codec, corrupt := range map[pgstore.Codec]string{pgstore.JSONCodec{}: `[1]`, pgstore.GobCodec{}: `{"gob":"!"}`} {
		st := newTestStore(t, db, pgstore.Config{Codec: codec})
		r := request()
		s, _ := st.Get(r, cookieName)
		s.Values["ch"] = make(chan int)
		check(fmt.Sprintf("%T: Save of a channel", codec), s.Save(r, httptest.NewRecorder()), pgstore.ErrEncode)
		s.Options.MaxAge = int(pgstore.MaxMaxAge) + 1
		s.Values = map[any]any{"user": "alice"}
		check(fmt.Sprintf("%T: Save with a MaxAge past MaxMaxAge", codec), s.Save(r, httptest.NewRecorder()), pgstore.ErrConfig)

		c := login(t, st, map[any]any{"user": "alice"})
		if _, err := db.Exec(`UPDATE `+qualified(st.SchemaName(), "user_sessions")+` SET sess = $1`, corrupt); err != nil {
			t.Fatal(err)
		}
		_, err := st.Get(request(c), cookieName)
		check(fmt.Sprintf("%T: Get of a corrupt row", codec), err, pgstore.ErrCorrupt)
	}
}

// A corrupt or non-object sess gives an error and a new session,
// never a panic, and the row is left alone.
func TestCorruptRow(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		for _, bad := range []string{`"a string"`, `[1,2,3]`, `null`, `42`, `{"gob":"bm90IGdvYg=="}`} {
			c := login(t, st, map[any]any{"user": "alice"})
			id := decodeID(t, c)
			if _, err := db.Exec(`UPDATE `+qualified(st.SchemaName(), "user_sessions")+` SET sess = $1 WHERE sid = $2`, bad, id); err != nil {
				t.Fatal(err)
			}
			r := request(c)
			s, err := st.Get(r, cookieName)
			if bad == `{"gob":"bm90IGdvYg=="}` {
				// A valid object to the JSON codec: its values load.
				if err != nil || s.Values["gob"] != "bm90IGdvYg==" {
					t.Errorf("%s: %v %v", bad, s.Values, err)
				}
				continue
			}
			if err == nil || !strings.HasPrefix(err.Error(), "pgstore: ") || strings.Count(err.Error(), "pgstore:") != 1 ||
				!errors.Is(err, pgstore.ErrCorrupt) {
				t.Errorf("sess %s: err %v, want ErrCorrupt saying pgstore: once", bad, err)
			}
			if s == nil || !s.IsNew || len(s.Values) != 0 {
				t.Fatalf("sess %s: session %+v", bad, s)
			}
			// Saving the replacement session does not touch the bad row.
			s.Values["user"] = "alice"
			nc := save(t, st, r, s)
			if decodeID(t, nc) == id {
				t.Errorf("sess %s: the corrupt row's ID was reused", bad)
			}
			if got, _ := row(t, db, st.SchemaName(), id); got != bad {
				t.Errorf("sess %s: row changed to %s", bad, got)
			}
		}
	})
}

func TestCloseIsIdempotentAndStopsPruner(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		cfg := pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: pgtest.Schema(t, db), PruneInterval: time.Hour}
		st, err := pgstore.New(db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(); err != nil {
			t.Fatalf("Close closed the caller's pool: %v", err)
		}
		if _, err := st.Get(request(), cookieName); err != nil {
			t.Fatalf("Get without a cookie after Close: %v", err)
		}
		r, s := get(t, st, nil)
		s.Values["a"] = 1
		if err := st.Save(r, httptest.NewRecorder(), s); err == nil {
			t.Fatal("Save after Close succeeded")
		}
	})
}

func TestOpenOwnsItsPool(t *testing.T) {
	dsn := pgtest.Require(t)
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	st, err := pgstore.Open(dsn, pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: schema})
	if err != nil {
		t.Fatal(err)
	}
	c := login(t, st, map[any]any{"a": 1})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := row(t, db, schema, decodeID(t, c)); !ok {
		t.Fatal("row missing")
	}
}

func TestPruneDeletesOnlyExpired(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		clk := newClock(t, db)
		st := newTestStore(t, db, pgstore.Config{}, clk.hooks())
		for i := 0; i < 3; i++ {
			login(t, st, map[any]any{"i": i})
		}
		clk.Advance(pgstore.DefaultMaxAge*time.Second + time.Second)
		live := login(t, st, map[any]any{"live": true})
		n, err := st.Prune(context.Background())
		if err != nil || n != 3 {
			t.Fatalf("Prune: %d, %v; want 3", n, err)
		}
		if _, s := get(t, st, live); s.Values["live"] != true {
			t.Fatal("Prune deleted a live session")
		}
	})
}

func TestConfigValidation(t *testing.T) {
	db := sharedDB(t, "postgres")
	for _, tc := range []struct {
		cfg  pgstore.Config
		want string
	}{
		{pgstore.Config{}, "Config.KeyPairs is empty"},
		{pgstore.Config{KeyPairs: [][]byte{[]byte("short")}}, "Config.KeyPairs[0]"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1, []byte("bad block")}}, "Config.KeyPairs[1]"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1}, TableName: strings.Repeat("t", 64)}, "Config.TableName"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1}, SchemaName: "a\x00b"}, "Config.SchemaName"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1}, AbsoluteTimeout: -1}, "Config.AbsoluteTimeout"},
		{pgstore.Config{ExpressSecrets: []string{"s"}, HashIDs: true}, "Config.HashIDs"},
		{pgstore.Config{ExpressSecrets: []string{"s"}, Codec: pgstore.GobCodec{}}, "Config.Codec"},
		{pgstore.Config{ExpressSecrets: []string{""}}, "Config.ExpressSecrets[0]"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1}, TimeZone: "Not/AZone"}, "Config.TimeZone"},
		{pgstore.Config{KeyPairs: [][]byte{hashKey1}, Options: &sessions.Options{MaxAge: -1}}, "Config.Options"},
	} {
		_, err := pgstore.New(db, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "pgstore: ") {
			t.Errorf("%s: err %v", tc.want, err)
		}
		if err != nil && !errors.Is(err, pgstore.ErrConfig) {
			t.Errorf("%s: %v does not wrap ErrConfig", tc.want, err)
		}
	}
	if _, err := pgstore.New(nil, pgstore.Config{KeyPairs: [][]byte{hashKey1}}); err == nil {
		t.Error("New(nil) succeeded")
	}
}

var _ io.Reader = failingReader{}

// Cookies from stores that gob-encode the ID with securecookie's defaults
// (antonlindstrom/pgstore), signed with the same keys, load the migrated
// row under that ID, so a migration logs nobody out.
func TestLegacyGobCookie(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1, blockKey1}})
	legacyID := "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPIYTEMZUGU3DOOBZGA"
	c := login(t, st, map[any]any{"user": "alice"})
	if _, err := db.Exec(`UPDATE `+qualified(st.SchemaName(), "user_sessions")+` SET sid = $1`, legacyID); err != nil {
		t.Fatal(err)
	}
	legacy, err := securecookie.New(hashKey1, blockKey1).Encode(cookieName, legacyID) // gob, as gorilla stores do
	if err != nil {
		t.Fatal(err)
	}
	if _, s := get(t, st, &http.Cookie{Name: cookieName, Value: legacy}); s.Values["user"] != "alice" {
		t.Fatalf("legacy cookie did not load the migrated session: %v", s.Values)
	}
	if _, s := get(t, st, c); !s.IsNew {
		t.Fatal("test setup: the old native cookie should no longer match")
	}
	// A gob payload that is not an ID-shaped string is rejected.
	bad, _ := securecookie.New(hashKey1, blockKey1).Encode(cookieName, "not an id; DROP")
	if _, s := get(t, st, &http.Cookie{Name: cookieName, Value: bad}); !s.IsNew {
		t.Fatal("a gob string with odd characters was accepted as an ID")
	}
}

// An empty block key means no encryption, like nil, rather than an AES key
// of size 0 that breaks every cookie.
func TestEmptyBlockKeyMeansNone(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1, []byte{}}})
	c := login(t, st, map[any]any{"user": "alice"})
	if _, s := get(t, st, c); s.Values["user"] != "alice" {
		t.Fatal("session did not load")
	}
	decodeID(t, c, hashKey1) // signed, not encrypted
}

// Errors from New say what went wrong: a database that does not exist is a
// connection problem, not a TimeZone one; config errors from Open do not
// claim a connection was tried.
func TestNewErrorMessages(t *testing.T) {
	dsn := pgtest.Require(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skip("needs a URL DSN")
	}
	u.Path = "/no_such_database_pgstore"
	_, err = pgstore.Open(u.String(), pgstore.Config{KeyPairs: [][]byte{hashKey1}})
	if err == nil || !strings.Contains(err.Error(), "pgstore: connect to database") || strings.Contains(err.Error(), "TimeZone") ||
		!strings.Contains(err.Error(), "dbname=no_such_database_pgstore") {
		t.Errorf("unknown database: %v", err)
	}
	_, err = pgstore.Open(dsn, pgstore.Config{})
	if !errors.Is(err, pgstore.ErrConfig) || strings.Contains(err.Error(), "connecting to") {
		t.Errorf("config error from Open: %v", err)
	}
}

func TestWithConnectTimeout(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h/db":                   "postgres://u@h/db?connect_timeout=10",
		"postgres://u@h/db?connect_timeout=3": "postgres://u@h/db?connect_timeout=3",
		"postgres://u:connect_timeout@h/db":   "postgres://u:connect_timeout@h/db?connect_timeout=10",
		"host=h dbname=db":                    "host=h dbname=db connect_timeout=10",
		"host=h connect_timeout=2":            "host=h connect_timeout=2",
		"host=h password=connect_timeout=x":   "host=h password=connect_timeout=x connect_timeout=10",
		"":                                    "connect_timeout=10",
	} {
		if got := pgstore.WithConnectTimeout(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// An active browser-session cookie signed with a rotated-out key is
// re-signed with the current key on its next touch, so the old key can be
// dropped; one already signed with the current key is not re-sent.
func TestBrowserSessionCookieResignedAfterRotation(t *testing.T) {
	db := sharedDB(t, "postgres")
	clk := newClock(t, db)
	schema := pgtest.Schema(t, db)
	old := newTestStore(t, db, pgstore.Config{SchemaName: schema}, clk.hooks())
	rotated := newTestStore(t, db, pgstore.Config{SchemaName: schema, KeyPairs: [][]byte{hashKey2, nil, hashKey1}}, clk.hooks())
	r, s := get(t, old, nil)
	s.Values["user"] = "alice"
	s.Options.MaxAge = 0
	c := save(t, old, r, s)

	clk.Advance(2 * time.Minute)
	r, s = get(t, rotated, c)
	resigned := save(t, rotated, r, s)
	if resigned == nil {
		t.Fatal("a cookie signed with the old key was not re-signed on touch")
	}
	decodeID(t, resigned, hashKey2)
	if resigned.MaxAge != 0 || !resigned.Expires.IsZero() {
		t.Errorf("re-signed cookie got a lifetime: %+v", resigned)
	}
	clk.Advance(2 * time.Minute)
	r, s = get(t, rotated, resigned)
	if again := save(t, rotated, r, s); again != nil {
		t.Error("a cookie already signed with the current key was re-sent")
	}
}

// The __Host- prefix (Secure, Path /, no Domain) works as a session name.
func TestHostPrefixedCookie(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	req := request()
	s, err := st.Get(req, "__Host-session")
	if err != nil {
		t.Fatal(err)
	}
	s.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := st.Save(req, w, s); err != nil {
		t.Fatal(err)
	}
	c := responseCookie(w, "__Host-session")
	if c == nil || !c.Secure || c.Path != "/" || c.Domain != "" {
		t.Fatalf("__Host- cookie %+v", c)
	}
	s2, err := st.Get(request(c), "__Host-session")
	if err != nil || s2.Values["user"] != "alice" {
		t.Fatalf("read back: %v %v", s2.Values, err)
	}
}

// Issued cookies stay far below browsers' 4 KB limit: they carry an ID,
// not values.
func TestCookieLength(t *testing.T) {
	db := sharedDB(t, "postgres")
	plain := newTestStore(t, db, pgstore.Config{})
	encrypted := newTestStore(t, db, pgstore.Config{KeyPairs: [][]byte{hashKey1, blockKey1}})
	express := newTestStore(t, db, pgstore.Config{ExpressSecrets: []string{"secret"}})
	big := map[any]any{"blob": strings.Repeat("x", 10_000)}
	for name, st := range map[string]*pgstore.Store{"plain": plain, "encrypted": encrypted, "express": express} {
		c := login(t, st, big)
		if len(c.String()) > 300 {
			t.Errorf("%s: Set-Cookie is %d bytes: %s", name, len(c.String()), c.String())
		}
	}
	// Express IDs are express-session's: 32 base64url characters.
	c := login(t, express, map[any]any{"a": 1})
	v, _ := url.PathUnescape(c.Value)
	id := strings.TrimPrefix(v[:strings.LastIndexByte(v, '.')], "s:")
	if raw, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(id) != 32 || len(raw) != 24 {
		t.Errorf("express ID %q: %d chars", id, len(id))
	}
}
