package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore/internal/pgproxy"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// handlePattern finds the handles of the sessions page's sign-out forms.
var handlePattern = regexp.MustCompile(`name="handle" value="([^"]*)"`)

// sessionEntries counts the sessions the page lists.
func sessionEntries(body string) int { return strings.Count(body, `<li class="session`) }

func TestSessionsPageListsAndEndsSessions(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	laptop, phone, other := newClient(t, srv), newClient(t, srv), newClient(t, srv)
	laptop.userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	phone.userAgent = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	laptop.login("alice")
	phone.login("alice")
	other.login("bob")

	if _, home := laptop.get("/"); !strings.Contains(home, `<a href="/sessions">`) {
		t.Errorf("the home page does not link to the sessions page:\n%s", home)
	}
	resp, body := laptop.get("/sessions")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /sessions: %s, Cache-Control %q, want 200 no-store:\n%s", resp.Status, resp.Header.Get("Cache-Control"), body)
	}
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"Firefox 133 on Windows", "Chrome 131 on Android", "This device", "127.0.0.1", "within the last minute",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the sessions page does not show %q:\n%s", want, body)
		}
	}
	if n := sessionEntries(body); n != 2 {
		t.Errorf("the sessions page lists %d sessions, want alice's 2 (not bob's):\n%s", n, body)
	}
	// This device comes first, and has no sign-out button of its own.
	if first := strings.Index(body, `<li class="session`); !strings.HasPrefix(body[first:], `<li class="session current">`) {
		t.Errorf("the first session listed is not this device's:\n%s", body)
	}
	handles := handlePattern.FindAllStringSubmatch(body, -1)
	if len(handles) != 1 {
		t.Fatalf("the page has %d sign-out forms for single sessions, want 1 (the phone's):\n%s", len(handles), body)
	}
	phoneHandle := handles[0][1]

	// Bob cannot end Alice's session with its handle.
	resp, _ = other.post("/sessions/end", url.Values{"handle": {phoneHandle}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/sessions?ended=false" {
		t.Errorf("bob's POST /sessions/end with alice's handle: %s to %q, want 303 to /sessions?ended=false", resp.Status, loc)
	}
	if got := phone.whoami(); got != aliceJSON {
		t.Fatalf("bob ended alice's session: whoami = %s", got)
	}
	if _, body := other.get("/sessions?ended=false"); !strings.Contains(body, alreadyEndedMsg) {
		t.Errorf("the page after a handle that ended nothing does not say %q:\n%s", alreadyEndedMsg, body)
	}

	resp, _ = laptop.post("/sessions/end", url.Values{"handle": {phoneHandle}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/sessions?ended=true" {
		t.Errorf("POST /sessions/end: %s to %q, want 303 to /sessions?ended=true", resp.Status, loc)
	}
	if got := phone.whoami(); got != loggedOut {
		t.Errorf("the phone after it was signed out: whoami = %s, want %s", got, loggedOut)
	}
	if got := laptop.whoami(); got != aliceJSON {
		t.Errorf("the laptop after it signed out the phone: whoami = %s, want %s", got, aliceJSON)
	}
	_, body = laptop.get("/sessions?ended=true")
	if n := sessionEntries(body); n != 1 || !strings.Contains(body, endedMsg) || !strings.Contains(body, "signed in nowhere else") {
		t.Errorf("after ending the phone's session the page lists %d sessions; want 1, with %q:\n%s", n, endedMsg, body)
	}
	if got := other.whoami(); got != `{"user":"bob"}` {
		t.Errorf("bob after alice's sign-outs: whoami = %s", got)
	}
}

func TestSignOutAllOtherSessions(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	clients := []*client{newClient(t, srv), newClient(t, srv), newClient(t, srv)}
	for _, c := range clients {
		c.login("alice")
	}
	bob := newClient(t, srv)
	bob.login("bob")

	resp, _ := clients[0].post("/sessions/others", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/sessions?others=2" {
		t.Fatalf("POST /sessions/others: %s to %q, want 303 to /sessions?others=2", resp.Status, loc)
	}
	if _, body := clients[0].get(resp.Header.Get("Location")); !strings.Contains(body, "Signed out 2 other sessions.") || sessionEntries(body) != 1 {
		t.Errorf("the page after signing out 2 others:\n%s", body)
	}
	for i, c := range clients[1:] {
		if got := c.whoami(); got != loggedOut {
			t.Errorf("other session %d: whoami = %s, want %s", i+1, got, loggedOut)
		}
	}
	if got := clients[0].whoami(); got != aliceJSON {
		t.Errorf("the session that signed out the others: whoami = %s, want %s", got, aliceJSON)
	}
	if got := bob.whoami(); got != `{"user":"bob"}` {
		t.Errorf("another user's session: whoami = %s", got)
	}
}

func TestSessionsPageEscapes(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	c := newClient(t, srv)
	c.userAgent = `<script>alert("ua")</script>`
	c.login(`<b>x</b>`)
	_, body := c.get("/sessions")
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>x</b>") ||
		!strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "&lt;b&gt;x&lt;/b&gt;") {
		t.Errorf("the user agent or the user name is not HTML-escaped:\n%s", body)
	}
}

func TestSessionsPageNeedsLogin(t *testing.T) {
	t.Parallel()
	_, srv := startApp(t, testConfig(t))
	c := newClient(t, srv)
	for _, req := range []struct {
		method, path string
		form         url.Values
	}{
		{http.MethodGet, "/sessions", nil},
		{http.MethodPost, "/sessions/others", url.Values{}},
		{http.MethodPost, "/sessions/end", url.Values{"handle": {"x"}}},
	} {
		resp, _ := c.do(req.method, req.path, req.form)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Errorf("%s %s logged out: %s to %q, want 303 to /", req.method, req.path, resp.Status, loc)
		}
		if c.sessionCookie() != nil {
			t.Errorf("%s %s logged out set a session cookie", req.method, req.path)
		}
	}
	c.login("alice")
	for _, handle := range []string{"", strings.Repeat("h", maxHandleLen+1)} {
		if resp, _ := c.post("/sessions/end", url.Values{"handle": {handle}}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /sessions/end with a %d-byte handle: %s, want 400", len(handle), resp.Status)
		}
	}
}

// While the database cannot be read, the sessions page and its buttons
// answer 503, never a page that says the user is logged out.
func TestSessionsPageDuringOutage(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	proxy, err := pgproxy.Start(pgtest.HostPort(cfg.DatabaseURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg.DatabaseURL = pgtest.WithHostPort(cfg.DatabaseURL, proxy.Addr())
	_, srv := startApp(t, cfg)
	c := newClient(t, srv)
	c.login("alice")

	proxy.Close()
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/sessions"},
		{http.MethodPost, "/sessions/others"},
		{http.MethodPost, "/sessions/end"},
	} {
		resp, body := c.do(req.method, req.path, url.Values{"handle": {"x"}})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s during the outage: %s, Retry-After %q, body %q; want 503 with Retry-After",
				req.method, req.path, resp.Status, resp.Header.Get("Retry-After"), body)
		}
	}
}

// The development cookie store keeps no list of sessions: no link, and
// the page says what it needs.
func TestSessionsPageWithCookieStore(t *testing.T) {
	t.Parallel()
	log, _ := newTestLogger(t)
	_, srv := startApp(t, appConfig{HashKey: randomKey(t), LocalDSNs: []string{unreachable}, Logger: log})
	c := newClient(t, srv)
	c.login("alice")
	if _, home := c.get("/"); strings.Contains(home, "/sessions") {
		t.Errorf("the home page links to the sessions page over the cookie store:\n%s", home)
	}
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/sessions"},
		{http.MethodPost, "/sessions/others"},
		{http.MethodPost, "/sessions/end"},
	} {
		resp, body := c.do(req.method, req.path, url.Values{"handle": {"x"}})
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "DATABASE_URL") {
			t.Errorf("%s %s over the cookie store: %s %q, want 404 naming DATABASE_URL", req.method, req.path, resp.Status, body)
		}
	}
	if got := c.whoami(); got != aliceJSON {
		t.Errorf("whoami = %s, want %s", got, aliceJSON)
	}
}

func TestLastActiveText(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Time{}, "unknown"},
		{now, "within the last minute"},
		{now.Add(-59 * time.Second), "within the last minute"},
		{now.Add(-time.Minute), "1 minute ago"},
		{now.Add(-5*time.Minute - 30*time.Second), "5 minutes ago"},
		{now.Add(-90 * time.Minute), "1 hour ago"},
		{now.Add(-47 * time.Hour), "47 hours ago"},
		{now.Add(-72 * time.Hour), "on 27 Nov 2026"},
	} {
		if got := lastActiveText(tc.at, now); got != tc.want {
			t.Errorf("lastActiveText(now - %s) = %q, want %q", now.Sub(tc.at), got, tc.want)
		}
	}
}

func TestBrowserName(t *testing.T) {
	for ua, want := range map[string]string{
		"":           "Unknown browser",
		"curl/8.5.0": "Unknown browser",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15": "Safari 17 on MacOS",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0":                                      "Firefox 133 on Windows",
	} {
		if got := browserName(ua); got != want {
			t.Errorf("browserName(%q) = %q, want %q", ua, got, want)
		}
	}
}
