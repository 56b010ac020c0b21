package ginstore_test

import (
	"database/sql"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/ginstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

const (
	cookieName = "session"
	thirtyDays = 30 * 24 * 60 * 60
)

// ginOptions are pgstore's cookie defaults with maxAge, the way a gin user
// sets a lifetime: gin's Options replace every attribute at once.
func ginOptions(maxAge int) sessions.Options {
	d := pgstore.DefaultOptions()
	return sessions.Options{Path: d.Path, Domain: d.Domain, MaxAge: maxAge, Secure: d.Secure, HttpOnly: d.HttpOnly, SameSite: d.SameSite}
}

// app is a gin app on a real HTTPS server (pgstore's cookies are Secure, so
// a cookie jar sends them only over HTTPS), its store and its table.
type app struct {
	t      *testing.T
	st     *pgstore.Store
	db     *sql.DB
	table  string // schema-qualified
	srv    *httptest.Server
	errors chan error // errors the handlers met, reported by the test
}

// startApp serves, with sessions whose cookies last for the browser
// session unless "remember me" is asked for:
//
//	/whoami       the user and the session ID, as "user id"
//	/cart?item=   a value in an anonymous session
//	/login?user=  the user, under a fresh ID (ginstore.Regenerate)
//	/remember?on= switch remember-me on (30 days) or off (browser session)
//	/logout       Clear and MaxAge -1, as gin users log out
//	/clear        Clear and Save only
//	/revoke-others  sign the user out everywhere but here
func startApp(t *testing.T, driver string) *app {
	t.Helper()
	st, db, schema := newTestStore(t, driver)
	a := &app{t: t, st: st, db: db, table: `"` + schema + `".user_sessions`, errors: make(chan error, 16)}
	store := ginstore.New(st)
	store.Options(ginOptions(0))

	report := func(c *gin.Context, err error) {
		a.errors <- err
		c.AbortWithStatus(http.StatusInternalServerError)
	}
	r := gin.New()
	r.Use(sessions.Sessions(cookieName, store))
	r.GET("/whoami", func(c *gin.Context) {
		s := sessions.Default(c)
		user, _ := s.Get("user").(string)
		c.String(http.StatusOK, "%s %s", user, s.ID())
	})
	r.POST("/cart", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("cart", c.Query("item"))
		if err := s.Save(); err != nil {
			report(c, err)
			return
		}
		c.String(http.StatusOK, s.ID())
	})
	r.POST("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("user", c.Query("user"))
		if err := ginstore.Regenerate(c, s); err != nil {
			report(c, err)
			return
		}
		if err := s.Save(); err != nil { // nothing left to write
			report(c, err)
			return
		}
		c.String(http.StatusOK, s.ID())
	})
	r.POST("/remember", func(c *gin.Context) {
		s := sessions.Default(c)
		if c.Query("on") == "1" {
			s.Options(ginOptions(thirtyDays))
		} else {
			s.Options(ginOptions(0))
		}
		if err := s.Save(); err != nil {
			report(c, err)
			return
		}
		c.String(http.StatusOK, "ok")
	})
	r.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Clear()
		s.Options(sessions.Options{Path: "/", MaxAge: -1})
		if err := s.Save(); err != nil {
			report(c, err)
			return
		}
		c.String(http.StatusOK, "bye")
	})
	r.POST("/clear", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Clear()
		if err := s.Save(); err != nil {
			report(c, err)
			return
		}
		c.String(http.StatusOK, "cleared")
	})
	r.POST("/revoke-others", func(c *gin.Context) {
		s := sessions.Default(c)
		keep, err := ginstore.Unwrap(s)
		if err != nil {
			report(c, err)
			return
		}
		n, err := st.RevokeOthers(c.Request.Context(), "user", s.Get("user"), keep)
		if err != nil {
			report(c, err)
			return
		}
		c.String(http.StatusOK, "%d", n)
	})

	a.srv = httptest.NewTLSServer(r)
	t.Cleanup(func() {
		a.srv.Close()
		close(a.errors)
		for err := range a.errors {
			t.Errorf("handler: %v", err)
		}
	})
	return a
}

// client is a browser: its cookie jar keeps what the server sets.
type client struct {
	a   *app
	hc  *http.Client
	jar *cookiejar.Jar
}

func (a *app) newClient() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		a.t.Fatal(err)
	}
	hc := *a.srv.Client() // a copy: the server hands out one shared client
	hc.Jar = jar
	return &client{a: a, hc: &hc, jar: jar}
}

// do sends a request and returns the response (its body read) and body.
func (c *client) do(method, path string) (*http.Response, string) {
	c.a.t.Helper()
	req, err := http.NewRequest(method, c.a.srv.URL+path, nil)
	if err != nil {
		c.a.t.Fatal(err)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		c.a.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		c.a.t.Fatalf("%s %s: %s: %s", method, path, res.Status, body)
	}
	return res, string(body)
}

// whoami returns the user and the session ID the server sees.
func (c *client) whoami() (user, id string) {
	c.a.t.Helper()
	_, body := c.do(http.MethodGet, "/whoami")
	user, id, _ = strings.Cut(body, " ")
	return user, id
}

// cookie returns the session cookie in the jar, or nil.
func (c *client) cookie() *http.Cookie {
	u, _ := url.Parse(c.a.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == cookieName {
			return ck
		}
	}
	return nil
}

// sessionCookie returns the session's Set-Cookie in res, parsed.
func sessionCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, ck := range res.Cookies() {
		if ck.Name == cookieName {
			return ck
		}
	}
	t.Fatalf("no %s cookie set; Set-Cookie: %q", cookieName, res.Header.Values("Set-Cookie"))
	return nil
}

// rows returns the number of session rows.
func (a *app) rows() int {
	a.t.Helper()
	var n int
	if err := a.db.QueryRow(`SELECT count(*) FROM ` + a.table).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

// row returns the stored sess of the session id and how long it has left
// by the database's clock, or found false.
func (a *app) row(id string) (sess string, left time.Duration, found bool) {
	a.t.Helper()
	var secs float64
	err := a.db.QueryRow(`SELECT sess::text, date_part('epoch', expire AT TIME ZONE 'UTC') - date_part('epoch', now()) FROM `+a.table+` WHERE sid = $1`, id).Scan(&sess, &secs)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false
	}
	if err != nil {
		a.t.Fatal(err)
	}
	return sess, time.Duration(secs * float64(time.Second)), true
}

// near reports whether got is within a minute of want.
func near(got, want time.Duration) bool {
	return got > want-time.Minute && got <= want+time.Minute
}

// Remember-me through gin's session Options: the cookie becomes persistent
// and the row lives 30 days; switched off, both go back to the browser
// session. Each client request goes through a cookie jar over HTTPS.
func TestRememberMe(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, driver)
			c := a.newClient()

			res, id := c.do(http.MethodPost, "/login?user=alice")
			if ck := sessionCookie(t, res); ck.MaxAge != 0 || !ck.Expires.IsZero() || !ck.Secure || !ck.HttpOnly {
				t.Fatalf("login cookie %q: want a Secure, HttpOnly browser-session cookie", res.Header.Values("Set-Cookie"))
			}
			if _, left, ok := a.row(id); !ok || !near(left, pgstore.DefaultBrowserSessionTTL) {
				t.Fatalf("after login the row lives %v (found %v), want the browser-session TTL %v", left, ok, pgstore.DefaultBrowserSessionTTL)
			}

			res, _ = c.do(http.MethodPost, "/remember?on=1")
			if ck := sessionCookie(t, res); ck.MaxAge != thirtyDays {
				t.Fatalf("remember me: cookie %q, want Max-Age=%d", res.Header.Values("Set-Cookie"), thirtyDays)
			}
			if _, left, ok := a.row(id); !ok || !near(left, thirtyDays*time.Second) {
				t.Fatalf("remember me: the row lives %v (found %v), want 30 days", left, ok)
			}
			// The next request loads the 30-day lifetime from the row: an
			// unchanged session keeps it and the user.
			if user, got := c.whoami(); user != "alice" || got != id {
				t.Fatalf("after remember me: whoami = %q %q, want alice %q", user, got, id)
			}
			if _, left, _ := a.row(id); !near(left, thirtyDays*time.Second) {
				t.Fatalf("a later request changed the row's lifetime to %v", left)
			}

			res, _ = c.do(http.MethodPost, "/remember?on=0")
			if ck := sessionCookie(t, res); ck.MaxAge != 0 || !ck.Expires.IsZero() {
				t.Fatalf("remember me off: cookie %q, want a browser-session cookie", res.Header.Values("Set-Cookie"))
			}
			if _, left, ok := a.row(id); !ok || !near(left, pgstore.DefaultBrowserSessionTTL) {
				t.Fatalf("remember me off: the row lives %v (found %v), want %v", left, ok, pgstore.DefaultBrowserSessionTTL)
			}
			if user, _ := c.whoami(); user != "alice" {
				t.Fatalf("remember me off: user %q, want alice", user)
			}
		})
	}
}

// ginstore.Regenerate on login: the session keeps its values under a new
// ID, the old row is gone, and the old cookie (an attacker's planted one)
// gives an empty session.
func TestRegenerateOnLogin(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, driver)
			c := a.newClient()

			_, before := c.do(http.MethodPost, "/cart?item=book")
			planted := c.cookie()
			if before == "" || planted == nil {
				t.Fatalf("anonymous cart: id %q, cookie %v", before, planted)
			}
			_, after := c.do(http.MethodPost, "/login?user=alice")
			if after == "" || after == before {
				t.Fatalf("login kept the session ID %q (now %q)", before, after)
			}
			if _, _, ok := a.row(before); ok {
				t.Fatal("the pre-login row still exists")
			}
			sess, _, ok := a.row(after)
			if !ok || !strings.Contains(sess, `"alice"`) || !strings.Contains(sess, `"book"`) {
				t.Fatalf("the new row: %s (found %v), want the user and the cart", sess, ok)
			}
			if n := a.rows(); n != 1 {
				t.Fatalf("%d rows, want 1", n)
			}
			if user, id := c.whoami(); user != "alice" || id != after {
				t.Fatalf("whoami = %q %q, want alice %q", user, id, after)
			}

			// Whoever holds the old cookie is not logged in.
			attacker := a.newClient()
			u, _ := url.Parse(a.srv.URL)
			attacker.jar.SetCookies(u, []*http.Cookie{planted})
			if user, id := attacker.whoami(); user != "" || id != "" {
				t.Fatalf("the pre-login cookie gives user %q, session %q; want an empty new session", user, id)
			}
		})
	}
}

// Logging out as gin users do, Clear and Options MaxAge -1, deletes the
// row and the cookie.
func TestLogoutDeletesRow(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, driver)
			c := a.newClient()
			_, id := c.do(http.MethodPost, "/login?user=alice")
			old := c.cookie()

			c.do(http.MethodPost, "/logout")
			if _, _, ok := a.row(id); ok {
				t.Fatal("the row survived the logout")
			}
			if n := a.rows(); n != 0 {
				t.Fatalf("%d rows after logout, want 0", n)
			}
			if ck := c.cookie(); ck != nil {
				t.Fatalf("the jar still holds the session cookie %v", ck)
			}
			// Replaying the old cookie brings nothing back.
			replay := a.newClient()
			u, _ := url.Parse(a.srv.URL)
			replay.jar.SetCookies(u, []*http.Cookie{old})
			if user, got := replay.whoami(); user != "" || got != "" {
				t.Fatalf("the logged-out cookie gives user %q, session %q", user, got)
			}
		})
	}
}

// Clear and Save alone, without MaxAge -1, is not a logout in pgstore: the
// row stays, emptied, under the same ID. The user is gone from it.
func TestClearEmptiesRow(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, driver)
			c := a.newClient()
			_, id := c.do(http.MethodPost, "/login?user=alice")

			c.do(http.MethodPost, "/clear")
			sess, _, ok := a.row(id)
			if !ok {
				t.Fatal("Clear and Save deleted the row; the test's premise (only MaxAge -1 deletes) changed")
			}
			if strings.Contains(sess, "alice") {
				t.Fatalf("the row still holds the user: %s", sess)
			}
			if user, got := c.whoami(); user != "" || got != id {
				t.Fatalf("after Clear: whoami = %q %q, want no user in session %q", user, got, id)
			}
		})
	}
}

// RevokeOthers with the session ginstore.Unwrap returns signs the user out
// of every other browser and keeps this one.
func TestRevokeOthers(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			a := startApp(t, driver)
			here, there, bob := a.newClient(), a.newClient(), a.newClient()
			_, hereID := here.do(http.MethodPost, "/login?user=alice")
			there.do(http.MethodPost, "/login?user=alice")
			bob.do(http.MethodPost, "/login?user=bob")

			if _, n := here.do(http.MethodPost, "/revoke-others"); n != "1" {
				t.Fatalf("RevokeOthers deleted %s sessions, want 1", n)
			}
			if user, id := here.whoami(); user != "alice" || id != hereID {
				t.Fatalf("the kept session: whoami = %q %q, want alice %q", user, id, hereID)
			}
			if user, _ := there.whoami(); user != "" {
				t.Fatalf("the other browser is still logged in as %q", user)
			}
			if user, _ := bob.whoami(); user != "bob" {
				t.Fatalf("bob's session: user %q", user)
			}
		})
	}
}
