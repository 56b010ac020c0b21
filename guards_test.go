package pgstore_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// Tests for guards that nothing else exercises: each builds the one case
// the guard stops, and first shows that the same case, but for the guarded
// property, goes through.

// A session that expired after it was loaded is not written back by Save,
// neither its changed values nor a touch: both UPDATEs require a live row,
// so a request that outlives its session cannot revive it. The row is moved
// into the past by SQL, hours past any clock skew, so that the test does
// not depend on which clock (Go's or the database's) judges expiry.
func TestSaveDoesNotReviveExpiredRow(t *testing.T) {
	// The store's MaxAge (30 days) plus six hours: the row ends six hours
	// before now.
	const intoThePast = `interval '30 days 6 hours'`
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		table := qualified(st.SchemaName(), pgstore.DefaultTableName)
		moveExpire := func(t *testing.T, sid, by string) {
			t.Helper()
			res, err := db.Exec(`UPDATE `+table+` SET expire = expire - `+by+` WHERE sid = $1`, sid)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("moved %d rows (%v), want 1", n, err)
			}
		}
		// snapshot is the row as stored, or "" when it is gone.
		snapshot := func(t *testing.T, sid string) string {
			t.Helper()
			var s string
			err := db.QueryRow(`SELECT sess::text || ' ' || expire::text FROM `+table+` WHERE sid = $1`, sid).Scan(&s)
			if errors.Is(err, sql.ErrNoRows) {
				return ""
			}
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		// expectNotFound saves s and checks that Save refused and wrote
		// nothing.
		expectNotFound := func(t *testing.T, r *http.Request, s *sessions.Session, sid string) {
			t.Helper()
			var pastNow bool
			if err := db.QueryRow(`SELECT expire < now() AT TIME ZONE 'UTC' - interval '5 hours' FROM `+table+
				` WHERE sid = $1`, sid).Scan(&pastNow); err != nil || !pastNow {
				t.Fatalf("the row is not hours past its expiry (%v)", err)
			}
			before := snapshot(t, sid)
			w := httptest.NewRecorder()
			if err := st.Save(r, w, s); !errors.Is(err, pgstore.ErrSessionNotFound) {
				t.Errorf("Save of an expired session: %v, want ErrSessionNotFound", err)
			}
			if after := snapshot(t, sid); after != before {
				t.Errorf("Save wrote the expired row:\nbefore %s\nafter  %s", before, after)
			}
			if c := responseCookie(w, cookieName); c != nil {
				t.Errorf("Save sent a cookie for an expired session: %v", c)
			}
		}

		t.Run("changed values", func(t *testing.T) {
			c := login(t, st, map[any]any{"n": 0})
			sid := decodeID(t, c)
			r, s := get(t, st, c)
			if s.IsNew {
				t.Fatal("the live session did not load")
			}
			moveExpire(t, sid, intoThePast)
			s.Values["n"] = 1
			expectNotFound(t, r, s, sid)
		})

		t.Run("touch", func(t *testing.T) {
			c := login(t, st, map[any]any{"n": 0})
			sid := decodeID(t, c)
			// An hour behind, still 30 days less an hour ahead: loaded, and
			// an unchanged Save is due a touch.
			moveExpire(t, sid, `interval '1 hour'`)
			r, s := get(t, st, c)
			if s.IsNew {
				t.Fatal("the live session did not load")
			}
			// Control: the same unchanged Save on a live row touches it.
			live := snapshot(t, sid)
			if c := save(t, st, r, s); c == nil {
				t.Fatal("an unchanged Save an hour behind did not touch (no cookie)")
			}
			if snapshot(t, sid) == live {
				t.Fatal("an unchanged Save an hour behind did not touch (row unchanged)")
			}

			moveExpire(t, sid, `interval '1 hour'`)
			r, s = get(t, st, c)
			if s.IsNew {
				t.Fatal("the live session did not load")
			}
			moveExpire(t, sid, intoThePast)
			expectNotFound(t, r, s, sid)
		})
	})
}

// A cookie longer than 4096 bytes is rejected before any work, even one
// that is otherwise valid: signed with the store's key and naming a live
// row. A native cookie cannot reach that length through its payload (decode
// refuses IDs over 256 bytes, a legacy gob ID with padding included), so it
// gets there through leading zeros in its signed timestamp, which
// securecookie itself accepts. The Express case is a long ID with its row.
func TestOverlongValidCookieIsRejected(t *testing.T) {
	const maxCookieLen = 4096
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		t.Run("native", func(t *testing.T) {
			st := newTestStore(t, db, pgstore.Config{})
			c := login(t, st, map[any]any{"user": "alice"})
			id := decodeID(t, c)

			// cookie signs id as securecookie does (no block key), with
			// zeros before the timestamp.
			cookie := func(t *testing.T, zeros int) *http.Cookie {
				t.Helper()
				date := strings.Repeat("0", zeros) + strconv.FormatInt(time.Now().Unix(), 10)
				value := base64.URLEncoding.EncodeToString([]byte(id))
				mac := hmac.New(sha256.New, hashKey1)
				mac.Write([]byte(cookieName + "|" + date + "|" + value))
				v := base64.URLEncoding.EncodeToString(append([]byte(date+"|"+value+"|"), mac.Sum(nil)...))
				// It is genuine: securecookie, without its own length
				// limit, gives the ID back.
				verifier := securecookie.New(hashKey1, nil)
				verifier.SetSerializer(securecookie.NopEncoder{})
				verifier.MaxAge(0)
				verifier.MaxLength(0)
				var got []byte
				if err := verifier.Decode(cookieName, v, &got); err != nil || string(got) != id {
					t.Fatalf("securecookie does not verify the cookie: %q, %v", got, err)
				}
				return &http.Cookie{Name: cookieName, Value: v}
			}

			// Control: with a few zeros the cookie loads the session.
			short := cookie(t, 10)
			if _, s := get(t, st, short); s.IsNew || s.ID != id || s.Values["user"] != "alice" {
				t.Fatalf("a valid cookie of %d bytes with a zero-padded timestamp did not load the session: new %v, values %v",
					len(short.Value), s.IsNew, s.Values)
			}

			long := cookie(t, 3000)
			if n := len(long.Value); n <= maxCookieLen || n > maxCookieLen+512 {
				t.Fatalf("the long cookie has %d bytes, want a little over %d", n, maxCookieLen)
			}
			if _, s := get(t, st, long); !s.IsNew || s.ID != "" || len(s.Values) != 0 {
				t.Errorf("a cookie of %d bytes loaded the session: %v", len(long.Value), s.Values)
			}
			if _, ok := row(t, db, st.SchemaName(), id); !ok {
				t.Fatal("the row is gone: the rejection proves nothing")
			}
		})

		t.Run("express", func(t *testing.T) {
			const secret = "guards: express secret"
			st := newTestStore(t, db, pgstore.Config{ExpressSecrets: []string{secret}})
			c := login(t, st, map[any]any{"user": "bob"})
			sid, _ := splitCookie(t, c.Value)
			table := qualified(st.SchemaName(), pgstore.DefaultTableName)
			// copyRow gives the session's row a second ID.
			copyRow := func(t *testing.T, newSID string) {
				t.Helper()
				if _, err := db.Exec(`INSERT INTO `+table+` (sid, sess, expire) SELECT $2, sess, expire FROM `+table+
					` WHERE sid = $1`, sid, newSID); err != nil {
					t.Fatal(err)
				}
			}
			load := func(t *testing.T, id string) *sessions.Session {
				t.Helper()
				r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
				r.Header.Set("Cookie", cookieName+"=s:"+id+"."+sign(secret, id))
				s, err := st.Get(r, cookieName)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				return s
			}

			// Control: a copy under another ID loads through a cookie
			// signed here.
			shortSID := sid + "-copy"
			copyRow(t, shortSID)
			if s := load(t, shortSID); s.IsNew || s.ID != shortSID || s.Values["user"] != "bob" {
				t.Fatalf("a hand-signed cookie for a copied row did not load it: new %v, values %v", s.IsNew, s.Values)
			}

			longSID := strings.Repeat(sid, maxCookieLen/len(sid)+1)
			copyRow(t, longSID)
			if s := load(t, longSID); !s.IsNew || s.ID != "" || len(s.Values) != 0 {
				t.Errorf("a cookie with a %d-byte ID loaded the session: %v", len(longSID), s.Values)
			}
			if _, ok := row(t, db, st.SchemaName(), longSID); !ok {
				t.Fatal("the long ID's row is gone: the rejection proves nothing")
			}
		})
	})
}
