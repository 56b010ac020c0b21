package pgstore_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// These tests run the real Express app in testdata/express (express-session
// and connect-pg-simple) beside a Go store on one table, and check that each
// side reads, writes, touches and ends the other's sessions.

// newExpressStore returns a Go store in Express mode on the app's table.
// Its cookies are not Secure, like the app's, which serves plain HTTP.
func newExpressStore(t *testing.T, db *sql.DB, schema string, secrets []string, h ...pgstore.TestHooks) *pgstore.Store {
	t.Helper()
	opts := pgstore.DefaultOptions()
	opts.Secure = false
	return newTestStore(t, db, pgstore.Config{
		SchemaName:     schema,
		ExpressSecrets: secrets,
		Options:        opts,
		TimeZone:       nodeTimeZone(t),
	}, h...)
}

// eachDriverInTurn runs f once per driver, one after the other, so that a
// test holds one Node process and one parallel slot.
func eachDriverInTurn(t *testing.T, f func(t *testing.T, drv string, db *sql.DB)) {
	t.Helper()
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) { f(t, drv, sharedDB(t, drv)) })
	}
}

// goRequest is a request to the Go side carrying the session cookie as a
// raw header.
func goRequest(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	if cookie != "" {
		r.Header.Set("Cookie", expressCookieName+"="+cookie)
	}
	return r
}

func goGet(t *testing.T, st *pgstore.Store, cookie string) (*http.Request, *sessions.Session) {
	t.Helper()
	r := goRequest(cookie)
	s, err := st.Get(r, expressCookieName)
	if err != nil {
		t.Fatalf("Go Get: %v", err)
	}
	return r, s
}

// goSave saves s and returns the session cookie it set, or nil.
func goSave(t *testing.T, st *pgstore.Store, r *http.Request, s *sessions.Session) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err != nil {
		t.Fatalf("Go Save: %v", err)
	}
	return responseCookie(w, expressCookieName)
}

// goLogin creates a session on the Go side and returns its cookie value.
func goLogin(t *testing.T, st *pgstore.Store, user string) string {
	t.Helper()
	r, s := goGet(t, st, "")
	s.Values["user"] = user
	c := goSave(t, st, r, s)
	if c == nil {
		t.Fatal("Go Save of a new session set no cookie")
	}
	return c.Value
}

// storedRow is a row as both sides see it.
type storedRow struct {
	sess   map[string]any
	cookie map[string]any
	expire time.Time // the expire column, read in zone
}

func readRow(t *testing.T, db *sql.DB, schema, zone, sid string) (storedRow, bool) {
	t.Helper()
	var raw string
	var micros int64
	err := db.QueryRow(`SELECT sess::text, (extract(epoch FROM expire AT TIME ZONE $2) * 1000000)::int8 FROM `+
		qualified(schema, pgstore.DefaultTableName)+` WHERE sid = $1`, sid, zone).Scan(&raw, &micros)
	if errors.Is(err, sql.ErrNoRows) {
		return storedRow{}, false
	}
	if err != nil {
		t.Fatalf("read row: %v", err)
	}
	row := storedRow{expire: time.UnixMicro(micros)}
	if err := json.Unmarshal([]byte(raw), &row.sess); err != nil {
		t.Fatalf("sess %s: %v", raw, err)
	}
	row.cookie, _ = row.sess["cookie"].(map[string]any)
	return row, true
}

// cookieExpires parses the row's cookie.expires; zero when it is null.
func (r storedRow) cookieExpires(t *testing.T) time.Time {
	t.Helper()
	switch v := r.cookie["expires"].(type) {
	case nil:
		return time.Time{}
	case string:
		tm, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("cookie.expires %q: %v", v, err)
		}
		return tm
	default:
		t.Fatalf("cookie.expires is %T %v", v, v)
		return time.Time{}
	}
}

// sign is cookie-signature's sign, written from its documented format.
func sign(secret, sid string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(sid))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// splitCookie returns the ID and signature of an express-session cookie
// value, URL-encoded or not.
func splitCookie(t *testing.T, value string) (sid, sig string) {
	t.Helper()
	raw, err := url.PathUnescape(value)
	if err != nil {
		t.Fatalf("cookie %q: %v", value, err)
	}
	rest, ok := strings.CutPrefix(raw, "s:")
	dot := strings.LastIndexByte(rest, '.')
	if !ok || dot < 0 {
		t.Fatalf("cookie %q is not s:<sid>.<signature>", value)
	}
	return rest[:dot], rest[dot+1:]
}

// A session made by Node's login is read by Go, values and all,
// without the members express-session and pgstore keep for themselves.
func TestExpressLoginOnNodeReadOnGo(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie, sid := node.login(t, "alice")
		node.set(t, cookie, "prefs", `{"langs":["en","fr"],"size":2.5,"n":3,"on":true,"none":null}`)

		_, s := goGet(t, st, cookie)
		if s.IsNew || s.ID != sid {
			t.Fatalf("Go did not load Node's session: IsNew %v, ID %q, want %q", s.IsNew, s.ID, sid)
		}
		if s.Values["user"] != "alice" {
			t.Errorf("user %#v, want alice", s.Values["user"])
		}
		want := map[string]any{"langs": []any{"en", "fr"}, "size": 2.5, "n": 3, "on": true, "none": nil}
		if !reflect.DeepEqual(s.Values["prefs"], want) {
			t.Errorf("prefs %#v, want %#v", s.Values["prefs"], want)
		}
		for _, reserved := range []string{"cookie", "_pgstore"} {
			if _, ok := s.Values[reserved]; ok {
				t.Errorf("Go's Values hold %q: %v", reserved, s.Values)
			}
		}
		if len(s.Values) != 2 {
			t.Errorf("Values %v, want user and prefs only", s.Values)
		}
		if s.Options.MaxAge != thirtyDaysMS/1000 {
			t.Errorf("Options.MaxAge %d, want Node's 30 days", s.Options.MaxAge)
		}
	})
}

// What Go writes into a Node session, Node sees, and a counter
// passes back and forth.
func TestExpressGoChangesSeenByNode(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie, _ := node.login(t, "bob")

		r, s := goGet(t, st, cookie)
		s.Values["theme"] = "dark"
		goSave(t, st, r, s)
		if w := node.whoami(t, cookie); w.User != "bob" || w.Session["theme"] != "dark" {
			t.Errorf("Node after Go's change: user %v, theme %v", w.User, w.Session["theme"])
		}

		if n := node.incr(t, cookie); n != 1 {
			t.Fatalf("Node counter %d, want 1", n)
		}
		for want := 2; want <= 6; want += 2 {
			r, s := goGet(t, st, cookie)
			n, ok := s.Values["counter"].(int)
			if !ok || n != want-1 {
				t.Fatalf("Go read counter %#v, want %d", s.Values["counter"], want-1)
			}
			s.Values["counter"] = n + 1
			goSave(t, st, r, s)
			if got := node.incr(t, cookie); got != want+1 {
				t.Fatalf("Node continued Go's counter %d with %d, want %d", want, got, want+1)
			}
		}
		if w := node.whoami(t, cookie); w.User != "bob" || w.Session["theme"] != "dark" || w.Session["counter"] != 7.0 {
			t.Errorf("Node's session at the end: %v", w.Session)
		}
	})
}

// A session Go creates is a well-formed express-session session
// that Node reads and writes.
func TestExpressGoSessionReadByNode(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		r, s := goGet(t, st, "")
		s.Values["user"] = "carol"
		s.Values["roles"] = []string{"admin"}
		c := goSave(t, st, r, s)
		if c == nil {
			t.Fatal("Go set no cookie")
		}

		row, ok := readRow(t, db, schema, zone, s.ID)
		if !ok {
			t.Fatal("Go wrote no row")
		}
		wantCookie := map[string]any{"originalMaxAge": float64(thirtyDaysMS), "secure": false, "httpOnly": true,
			"path": "/", "sameSite": "lax"}
		for k, v := range wantCookie {
			if row.cookie[k] != v {
				t.Errorf("sess.cookie.%s = %#v, want %#v (cookie %v)", k, row.cookie[k], v, row.cookie)
			}
		}
		if exp := row.cookieExpires(t); !exp.Equal(row.expire) {
			t.Errorf("sess.cookie.expires %v, expire column %v", exp, row.expire)
		}
		if meta, _ := row.sess["_pgstore"].(map[string]any); meta["created"] == nil {
			t.Errorf("sess has no _pgstore.created: %v", row.sess)
		}

		w := node.whoami(t, c.Value) // a 500 here means Node rejected the cookie member
		if w.User != "carol" || w.SID != s.ID || !reflect.DeepEqual(w.Session["roles"], []any{"admin"}) {
			t.Fatalf("Node read Go's session as %+v", w)
		}
		if ck, _ := w.Session["cookie"].(map[string]any); ck["originalMaxAge"] != float64(thirtyDaysMS) {
			t.Errorf("Node's cookie member %v", w.Session["cookie"])
		}
		if n := node.incr(t, c.Value); n != 1 {
			t.Errorf("Node's counter on Go's session: %d", n)
		}
		row, _ = readRow(t, db, schema, zone, s.ID)
		if meta, _ := row.sess["_pgstore"].(map[string]any); meta["created"] == nil {
			t.Errorf("Node's write dropped _pgstore: %v", row.sess)
		}
		_, s = goGet(t, st, c.Value)
		if s.IsNew || s.Values["counter"] != 1 || s.Values["user"] != "carol" {
			t.Errorf("Go after Node's write: %v", s.Values)
		}
	})
}

// A session ended or moved on either side is gone on both.
func TestExpressLogoutEitherSide(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})

		t.Run("Node logout", func(t *testing.T) {
			cookie, sid := node.login(t, "dave")
			slowReq, slow := goGet(t, st, cookie) // a Go request in flight
			if slow.IsNew {
				t.Fatal("Go did not load the session")
			}
			node.call(t, http.MethodPost, "/logout", cookie, nil)

			r, s := goGet(t, st, cookie)
			if !s.IsNew || len(s.Values) != 0 {
				t.Fatalf("Go loaded a session Node logged out: %v", s.Values)
			}
			s.Values["user"] = "mallory"
			if c := goSave(t, st, r, s); c == nil || s.ID == sid {
				t.Errorf("the logged-out ID was reused (cookie %v)", c)
			}
			slow.Values["cart"] = "book"
			if err := st.Save(slowReq, httptest.NewRecorder(), slow); !errors.Is(err, pgstore.ErrSessionNotFound) {
				t.Errorf("Save of a session Node logged out: %v, want ErrSessionNotFound", err)
			}
			if _, ok := readRow(t, db, schema, zone, sid); ok {
				t.Error("the logged-out session came back")
			}
		})

		t.Run("Go logout", func(t *testing.T) {
			cookie, sid := node.login(t, "erin")
			r, s := goGet(t, st, cookie)
			s.Options.MaxAge = -1
			if c := goSave(t, st, r, s); c == nil || c.MaxAge >= 0 || c.Value != "" {
				t.Errorf("Go's logout cookie %v", c)
			}
			if w := node.whoami(t, cookie); w.User != nil {
				t.Errorf("Node still sees %v after Go's logout", w.User)
			}
			if _, ok := readRow(t, db, schema, zone, sid); ok {
				t.Error("row still there")
			}
		})

		t.Run("Go regenerate", func(t *testing.T) {
			cookie, sid := node.login(t, "frank")
			r, s := goGet(t, st, cookie)
			s.Values["role"] = "admin"
			w := httptest.NewRecorder()
			if err := st.Regenerate(r, w, s); err != nil {
				t.Fatalf("Regenerate: %v", err)
			}
			c := responseCookie(w, expressCookieName)
			if c == nil || s.ID == sid {
				t.Fatalf("Regenerate: cookie %v, ID %q (was %q)", c, s.ID, sid)
			}
			if got := node.whoami(t, cookie); got.User != nil {
				t.Errorf("Node still loads the old ID: %v", got.User)
			}
			if got := node.whoami(t, c.Value); got.User != "frank" || got.Session["role"] != "admin" || got.SID != s.ID {
				t.Errorf("Node with the regenerated cookie: %+v", got)
			}
		})

		t.Run("Node regenerate", func(t *testing.T) {
			cookie := goLogin(t, st, "gina")
			sid, _ := splitCookie(t, cookie)
			var resp struct{ SID string }
			set := node.call(t, http.MethodPost, "/login?user=gina", cookie, &resp)
			if set == nil || resp.SID == sid {
				t.Fatalf("Node's login with Go's cookie kept the ID %q", resp.SID)
			}
			if _, s := goGet(t, st, cookie); !s.IsNew {
				t.Errorf("Go still loads the ID Node regenerated away")
			}
			if _, ok := readRow(t, db, schema, zone, sid); ok {
				t.Error("Node's regenerate left Go's row")
			}
			if _, s := goGet(t, st, set.Value); s.IsNew || s.ID != resp.SID || s.Values["user"] != "gina" {
				t.Errorf("Go did not load the session Node regenerated into: %v", s.Values)
			}
		})
	})
}

// Secrets rotate on either side without logging anyone out:
// the first secret signs, every secret verifies, on both sides alike.
func TestExpressSecretRotation(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	oldNode := startExpress(t, schema, expressOptions{secrets: []string{oldSecret}})
	rotatedNode := startExpress(t, schema, expressOptions{secrets: []string{newSecret, oldSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		oldGo := newExpressStore(t, db, schema, []string{oldSecret})
		rotatedGo := newExpressStore(t, db, schema, []string{newSecret, oldSecret})

		// The test's signer agrees with Node's cookies, byte for byte.
		nodeCookie, nodeSID := rotatedNode.login(t, "heidi")
		encodedSig := strings.NewReplacer("+", "%2B", "/", "%2F").Replace(sign(newSecret, nodeSID))
		if want := "s%3A" + nodeSID + "." + encodedSig; nodeCookie != want {
			t.Fatalf("Node's cookie %q, test signer says %q", nodeCookie, want)
		}
		if _, s := goGet(t, rotatedGo, nodeCookie); s.Values["user"] != "heidi" {
			t.Errorf("rotated Go did not read rotated Node's cookie")
		}
		if _, s := goGet(t, oldGo, nodeCookie); !s.IsNew {
			t.Errorf("Go with only the old secret read a cookie signed with the new one")
		}

		// Go ["new","old"] reads cookies Node signed with "old".
		oldNodeCookie, _ := oldNode.login(t, "ivan")
		if _, s := goGet(t, rotatedGo, oldNodeCookie); s.IsNew || s.Values["user"] != "ivan" {
			t.Errorf("rotated Go did not read a cookie Node signed with the old secret")
		}

		// Node ["new","old"] reads cookies Go signed with "old".
		oldGoCookie := goLogin(t, oldGo, "judy")
		if w := rotatedNode.whoami(t, oldGoCookie); w.User != "judy" {
			t.Errorf("rotated Node read Go's old-secret cookie as user %v", w.User)
		}

		// Go's new cookies are signed with "new" only, in Node's encoding.
		newGoCookie := goLogin(t, rotatedGo, "ken")
		sid, sig := splitCookie(t, newGoCookie)
		if sig != sign(newSecret, sid) || sig == sign(oldSecret, sid) {
			t.Errorf("Go's cookie %q is not signed with the first secret", newGoCookie)
		}
		encodedSig = strings.NewReplacer("+", "%2B", "/", "%2F").Replace(sig)
		if want := "s%3A" + sid + "." + encodedSig; newGoCookie != want {
			t.Errorf("Go's cookie %q, Node would write %q", newGoCookie, want)
		}
		if w := rotatedNode.whoami(t, newGoCookie); w.User != "ken" {
			t.Errorf("rotated Node read Go's new cookie as user %v", w.User)
		}
		if w := oldNode.whoami(t, newGoCookie); w.User != nil {
			t.Errorf("Node with only the old secret read Go's new cookie as user %v", w.User)
		}
		if _, s := goGet(t, oldGo, newGoCookie); !s.IsNew {
			t.Errorf("Go with only the old secret read its new cookie")
		}
	})
}

// Go, on a connection in another TimeZone, judges a Node
// session expired exactly when connect-pg-simple does. Node's verdict cannot
// be asked at a chosen instant without sleeping, so its rule is evaluated in
// SQL as connect-pg-simple writes it, on a connection in the zone Node's
// connections use.
func TestExpressExpiryAgreesWithConnectPgSimple(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, drv string, nodeLike *sql.DB) {
		tokyo := pgtest.Open(t, drv, map[string]string{"options": "-c TimeZone=Asia/Tokyo"})
		var got string
		if err := tokyo.QueryRow(`SHOW TimeZone`).Scan(&got); err != nil || got != "Asia/Tokyo" {
			t.Fatalf("Go connection TimeZone %q, %v", got, err)
		}
		clk := newClock(t, tokyo)
		st := newExpressStore(t, tokyo, schema, []string{newSecret}, clk.hooks())

		before := time.Now()
		cookie, sid := node.login(t, "leo")
		row, _ := readRow(t, nodeLike, schema, zone, sid)
		expire := row.expire
		if expire.Truncate(time.Second) != expire {
			t.Errorf("connect-pg-simple wrote a fractional expire %v", expire)
		}
		if d := expire.Sub(before.Add(thirtyDaysMS * time.Millisecond)); d < 0 || d > 10*time.Second {
			t.Fatalf("expire %v is not 30 days after login (%v): check that Config.TimeZone is Node's zone %q", expire, before, zone)
		}

		nodeLoads := func(at time.Time) bool {
			t.Helper()
			var ok bool
			err := nodeLike.QueryRow(`SELECT EXISTS (SELECT 1 FROM `+qualified(schema, pgstore.DefaultTableName)+
				` WHERE sid = $1 AND expire >= to_timestamp(ceil($2::float8)))`, sid, float64(at.UnixMicro())/1e6).Scan(&ok)
			if err != nil {
				t.Fatalf("connect-pg-simple's rule: %v", err)
			}
			return ok
		}
		goLoads := func(at time.Time) bool {
			t.Helper()
			clk.Advance(at.Sub(clk.Now()))
			_, s := goGet(t, st, cookie)
			if !s.IsNew && s.Values["user"] != "leo" {
				t.Fatalf("Go loaded %v", s.Values)
			}
			return !s.IsNew
		}
		// A row lives up to and including its expire instant on both sides:
		// connect-pg-simple reads it while expire >= now, and so does Go.
		for _, off := range []time.Duration{-time.Hour, -time.Second, -time.Millisecond, -time.Microsecond, 0,
			time.Microsecond, time.Millisecond, time.Second, time.Hour} {
			at := expire.Add(off)
			goLive, nodeLive := goLoads(at), nodeLoads(at)
			if want := off <= 0; goLive != want || nodeLive != want {
				t.Errorf("%v from expire: Go loads %v, connect-pg-simple loads %v, want %v", off, goLive, nodeLive, want)
			}
		}
		// Nothing above wrote: Node still has the row as it wrote it.
		if after, _ := readRow(t, nodeLike, schema, zone, sid); !after.expire.Equal(expire) {
			t.Errorf("Go's reads moved expire from %v to %v", expire, after.expire)
		}
	})
}

// Go takes the cookie as a browser sends it, URL-encoded or
// raw, and refuses anything not signed with one of its secrets before any
// query, as Node does.
func TestExpressCookieParsing(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret, oldSecret}})
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			db, proxy := proxied(t, drv)
			st := newExpressStore(t, db, schema, []string{newSecret, oldSecret})
			cookie, sid := node.login(t, "mallory")
			raw, err := url.PathUnescape(cookie)
			if err != nil || raw == cookie {
				t.Fatalf("Node's cookie %q is not URL-encoded", cookie)
			}
			sig := sign(newSecret, sid)
			otherSID := strings.Repeat("A", len(sid))

			for _, tc := range []struct {
				name, value string
				valid       bool
			}{
				{"URL-encoded, as Node sets it", cookie, true},
				{"raw", raw, true},
				{"lower-case escapes", strings.ReplaceAll(cookie, "%3A", "%3a"), true},
				{"signed with the old secret", "s:" + sid + "." + sign(oldSecret, sid), true},
				{"unsigned ID", sid, false},
				{"s: and ID, no signature", "s:" + sid, false},
				{"empty signature", "s:" + sid + ".", false},
				{"bad signature", "s:" + sid + "." + strings.Repeat("A", len(sig)), false},
				{"truncated signature", "s:" + sid + "." + sig[:len(sig)-1], false},
				{"padded signature", "s:" + sid + "." + sig + "=", false},
				{"signature of another ID", "s:" + otherSID + "." + sig, false},
				{"unknown secret", "s:" + sid + "." + sign("someone else's secret", sid), false},
				{"bad escape", "s%3" + sid, false},
				{"empty", "", false},
				// How the Cookie header is read: as Node's cookie package reads it.
				{"leading space", " " + cookie, true},
				{"leading tab", "\t" + cookie, true},
				{"trailing space", cookie + " ", true},
				{"quoted", `"` + cookie + `"`, true},
				{"a second, garbage cookie of the name", cookie + "; " + expressCookieName + "=garbage", true},
				{"a first cookie holding a backslash", `a\b; ` + expressCookieName + "=" + cookie, false},
				{"a first cookie holding a quote", `a"b; ` + expressCookieName + "=" + cookie, false},
				{"a first, garbage cookie of the name", "garbage; " + expressCookieName + "=" + cookie, false},
			} {
				proxy.Reset()
				r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
				r.Header.Set("Cookie", expressCookieName+"="+tc.value)
				s, err := st.Get(r, expressCookieName)
				if err != nil {
					t.Errorf("%s: Get: %v", tc.name, err)
					continue
				}
				if tc.valid {
					if s.IsNew || s.ID != sid || s.Values["user"] != "mallory" {
						t.Errorf("%s: Go did not load the session (%v)", tc.name, s.Values)
					}
				} else {
					if !s.IsNew || s.ID != "" || len(s.Values) != 0 {
						t.Errorf("%s: Go loaded a session: %v", tc.name, s.Values)
					}
					if n := proxy.RoundTrips(); n != 0 {
						t.Errorf("%s: %d round trips, want none (%q)", tc.name, n, proxy.Statements())
					}
				}
				// Node agrees on every value.
				if w := node.whoami(t, tc.value); (w.User == "mallory") != tc.valid {
					t.Errorf("%s: Node says user %v; Go's verdict valid=%v", tc.name, w.User, tc.valid)
				}
			}

			// A Go cookie too works both ways.
			goCookie := goLogin(t, st, "niaj")
			goRaw, _ := url.PathUnescape(goCookie)
			for _, v := range []string{goCookie, goRaw} {
				if _, s := goGet(t, st, v); s.Values["user"] != "niaj" {
					t.Errorf("Go did not read its own cookie as %q", v)
				}
				if w := node.whoami(t, v); w.User != "niaj" {
					t.Errorf("Node did not read Go's cookie as %q", v)
				}
			}
		})
	}
}

// A cookie is accepted only with the exact signature of one of
// the store's secrets. A secret of the same length that differs in one
// byte, or a signature that differs in any one character (so a comparison
// that stopped early, or read only part of it, would be caught), is refused
// before any query. Whether the comparison takes constant time cannot be
// observed reliably in a test; express.go uses hmac.Equal for that.
func TestExpressSignatureMustMatchExactly(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(drv, func(t *testing.T) {
			t.Parallel()
			db, proxy := proxied(t, drv)
			st := newTestStore(t, db, pgstore.Config{ExpressSecrets: []string{newSecret, oldSecret}})
			sid, sig := splitCookie(t, login(t, st, map[any]any{"user": "rita"}).Value)
			if sig != sign(newSecret, sid) {
				t.Fatalf("the store signed %q with something other than its first secret", sid)
			}
			load := func(t *testing.T, sig string) (*sessions.Session, int64) {
				t.Helper()
				proxy.Reset()
				r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
				r.Header.Set("Cookie", cookieName+"=s:"+sid+"."+sig)
				s, err := st.Get(r, cookieName)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				return s, proxy.RoundTrips()
			}

			for _, secret := range []string{newSecret, oldSecret} {
				if s, _ := load(t, sign(secret, sid)); s.IsNew || s.ID != sid || s.Values["user"] != "rita" {
					t.Errorf("signed with %q: not loaded (%v)", secret, s.Values)
				}
			}

			wrong := []byte(newSecret)
			wrong[len(wrong)-1] ^= 1
			refused := map[string]string{"a secret of equal length, one bit off": sign(string(wrong), sid)}
			for i := range sig {
				b := []byte(sig)
				if b[i] = 'A'; sig[i] == 'A' {
					b[i] = 'B'
				}
				refused[fmt.Sprintf("signature changed at %d of %d", i, len(sig))] = string(b)
			}
			for what, bad := range refused {
				s, n := load(t, bad)
				if !s.IsNew || s.ID != "" || len(s.Values) != 0 {
					t.Errorf("%s: loaded %v", what, s.Values)
				}
				if n != 0 {
					t.Errorf("%s: %d round trips, want none (%q)", what, n, proxy.Statements())
				}
			}
		})
	}
}

// A touch by Go moves sess.cookie.expires and the expire column
// together, to the millisecond, and Node carries on from Go's write.
func TestExpressTouchKeepsCookieAndExpireInStep(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		clk := newClock(t, db)
		clk.Advance(123 * time.Millisecond) // a clock between seconds
		st := newExpressStore(t, db, schema, []string{newSecret}, clk.hooks())
		cookie, sid := node.login(t, "olivia")

		r, s := goGet(t, st, cookie)
		s.Values["theme"] = "dark"
		goSave(t, st, r, s) // a change, within TouchInterval: values only
		before, _ := readRow(t, db, schema, zone, sid)

		// connect-pg-simple rounds expire up to the second, up to two
		// seconds past this clock: step well past TouchInterval.
		clk.Advance(pgstore.DefaultTouchInterval + 5*time.Second)
		r, s = goGet(t, st, cookie)
		c := goSave(t, st, r, s) // unchanged, but the stored expiry lags: a touch
		if c == nil {
			t.Error("the touch did not send the cookie again")
		}
		after, _ := readRow(t, db, schema, zone, sid)
		// Rounded up to a whole second, as connect-pg-simple judges it.
		want := clk.Now().Add(thirtyDaysMS * time.Millisecond).Truncate(time.Second).Add(time.Second)
		if !after.expire.Equal(want) {
			t.Errorf("expire after the touch %v, want %v", after.expire, want)
		}
		if got := after.cookieExpires(t); !got.Equal(after.expire) {
			t.Errorf("sess.cookie.expires %v, expire column %v", got, after.expire)
		}
		if !after.expire.After(before.expire) || !after.cookieExpires(t).After(before.cookieExpires(t)) {
			t.Errorf("the touch did not move both: before %v / %v, after %v / %v",
				before.cookieExpires(t), before.expire, after.cookieExpires(t), after.expire)
		}

		// Within TouchInterval an unchanged Save writes nothing.
		r, s = goGet(t, st, cookie)
		if c := goSave(t, st, r, s); c != nil {
			t.Errorf("an unchanged Save right after a touch sent a cookie")
		}
		if again, _ := readRow(t, db, schema, zone, sid); !again.expire.Equal(after.expire) {
			t.Errorf("an unchanged Save moved expire")
		}

		if n := node.incr(t, cookie); n != 1 {
			t.Errorf("Node's counter after Go's touch: %d", n)
		}
		if w := node.whoami(t, cookie); w.User != "olivia" || w.Session["theme"] != "dark" || w.Session["counter"] != 1.0 {
			t.Errorf("Node after Go's touch: %+v", w)
		}
	})
}

// A browser-session cookie (maxAge null) stays one whichever
// side writes, and its row lives a day after its last use.
func TestExpressBrowserSessionCookie(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}, maxAgeMS: "null"})
	zone := nodeTimeZone(t)
	isBrowserSession := func(t *testing.T, row storedRow) {
		t.Helper()
		if v, ok := row.cookie["originalMaxAge"]; !ok || v != nil {
			t.Errorf("sess.cookie.originalMaxAge = %#v, want null", v)
		}
		if v, ok := row.cookie["expires"]; !ok || v != nil {
			t.Errorf("sess.cookie.expires = %#v, want null", v)
		}
	}
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		clk := newClock(t, db)
		st := newExpressStore(t, db, schema, []string{newSecret}, clk.hooks())
		loginAt := time.Now()
		cookie, sid := node.login(t, "peggy")
		row, _ := readRow(t, db, schema, zone, sid)
		isBrowserSession(t, row)
		if d := row.expire.Sub(loginAt.Add(24 * time.Hour)); d < -time.Second || d > 10*time.Second {
			t.Errorf("Node's expire %v is not a day after login %v", row.expire, loginAt)
		}

		r, s := goGet(t, st, cookie)
		if s.IsNew || s.Options.MaxAge != 0 {
			t.Fatalf("Go read Node's browser session: IsNew %v, Options.MaxAge %d, want 0", s.IsNew, s.Options.MaxAge)
		}
		s.Values["theme"] = "dark"
		goSave(t, st, r, s)
		row, _ = readRow(t, db, schema, zone, sid)
		isBrowserSession(t, row)
		if d := row.expire.Sub(time.Now().Add(24 * time.Hour)); d < -10*time.Second || d > 10*time.Second {
			t.Errorf("expire %v is not about a day ahead", row.expire)
		}

		// A touch keeps it a browser-session cookie and moves expire a
		// day past Go's now.
		clk.Advance(2 * time.Minute)
		r, s = goGet(t, st, cookie)
		c := goSave(t, st, r, s)
		if c != nil {
			t.Errorf("Go re-sent a browser-session cookie on touch (%v); it has no expiry to refresh", c)
		}
		row, _ = readRow(t, db, schema, zone, sid)
		isBrowserSession(t, row)
		if want := clk.Now().Add(pgstore.DefaultBrowserSessionTTL); !row.expire.Equal(want) {
			t.Errorf("expire after the touch %v, want %v", row.expire, want)
		}

		w := node.whoami(t, cookie)
		if w.User != "peggy" || w.Session["theme"] != "dark" {
			t.Errorf("Node after Go's writes: %+v", w)
		}
		if ck, ok := w.Session["cookie"].(map[string]any); !ok || ck["originalMaxAge"] != nil || ck["expires"] != nil {
			t.Errorf("Node's cookie after Go's writes: %v", ck)
		}
		if n := node.incr(t, cookie); n != 1 {
			t.Errorf("Node's counter: %d", n)
		}

		// A browser session made by Go is one for Node too.
		r, s = goGet(t, st, "")
		s.Options.MaxAge = 0
		s.Values["user"] = "quinn"
		c = goSave(t, st, r, s)
		if c == nil || c.MaxAge != 0 || !c.Expires.IsZero() {
			t.Fatalf("Go's browser-session cookie %v", c)
		}
		row, _ = readRow(t, db, schema, zone, s.ID)
		isBrowserSession(t, row)
		if want := clk.Now().Add(pgstore.DefaultBrowserSessionTTL); !row.expire.Equal(want) {
			t.Errorf("expire of Go's browser session %v, want %v", row.expire, want)
		}
		w = node.whoami(t, c.Value)
		if ck, ok := w.Session["cookie"].(map[string]any); !ok || w.User != "quinn" || ck["originalMaxAge"] != nil {
			t.Errorf("Node read Go's browser session as %+v", w)
		}
	})
}
