package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
	"github.com/lib/pq"

	"github.com/pgsessions/pgstore/internal/pgtest"
)

// chromiumPath is where Debian's chromium package puts the browser
// (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// browserBound bounds a test's whole browser session: starting Chromium,
// every page and every wait. The browser is stopped when it passes.
// stepBound bounds each step (do, value), so that a page that never shows
// what a step waits for fails the test long before that.
const (
	browserBound = 3 * time.Minute
	stepBound    = 30 * time.Second
)

// phoneWidth is the viewport width, in CSS pixels, of the phone the test
// emulates (device.IPhoneX).
const phoneWidth = 375

// A user signed in on a laptop and on a phone (two browser contexts of a
// real Chromium: two cookie jars) sees both sessions on the phone's
// sessions page, the phone's own marked, and signs the laptop out from the
// phone: with the "Sign out" button of its session, then, after the laptop
// signs in again, with "Sign out all other sessions". Each time the
// laptop's next request finds it logged out, and the phone stays logged in.
// The page fits the phone's 375 px without scrolling sideways, and shows
// no session ID.
func TestSessionsPageInBrowser(t *testing.T) {
	chromium := findChromium(t)
	cfg := testConfig(t)
	a, srv := startApp(t, cfg)
	browser := startBrowser(t, chromium)
	laptop := newBrowserContext(t, browser)
	phone := newBrowserContext(t, browser)
	if err := chromedp.Do(phone, chromedp.Emulate(device.IPhoneX)); err != nil {
		t.Fatalf("emulate an iPhone X: %v", err)
	}

	login(t, laptop, srv.URL, "alice")
	login(t, phone, srv.URL, "alice")

	// The phone opens its sessions page from the home page.
	do(t, phone, "open the sessions page",
		chromedp.Click(chromedp.CSS(`a[href="/sessions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`li.session`)))
	list := listedSessions(t, phone)
	if len(list) != 2 {
		t.Fatalf("the sessions page lists %d sessions, want 2 (laptop and phone):\n%v", len(list), list)
	}
	current, other := list[0], list[1]
	if other.Current {
		current, other = other, current
	}
	if !current.Current || other.Current {
		t.Fatalf("want exactly one session marked current:\n%v", list)
	}
	// The phone's session is marked, with the browser the iPhone's user
	// agent names; the laptop's is headless Chromium's on Linux.
	for _, want := range []string{"This device", "Safari 11 on iOS", "127.0.0.1", "Signed in", "Last active", "within the last minute", "Expires"} {
		if !strings.Contains(current.Text, want) {
			t.Errorf("the phone's own session does not say %q:\n%s", want, current.Text)
		}
	}
	if strings.Contains(other.Text, "This device") || !strings.Contains(other.Text, "on Linux") || !strings.Contains(other.Text, "127.0.0.1") {
		t.Errorf("the laptop's session is marked as this device, or does not say Linux and 127.0.0.1:\n%s", other.Text)
	}
	if current.Buttons != 0 || other.Buttons != 1 {
		t.Errorf("the phone's session has %d sign-out buttons and the laptop's %d; want 0 and 1", current.Buttons, other.Buttons)
	}
	checkNoSessionIDs(t, phone, a, cfg.Schema, laptop)
	checkFitsPhone(t, phone)

	// "Sign out" on the laptop's session.
	do(t, phone, "sign the laptop out",
		chromedp.Click(chromedp.CSS(`li.session:not(.current) form[action="/sessions/end"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if notice := text(t, phone, `.notice`); notice != endedMsg {
		t.Errorf("after signing the laptop out, the page says %q, want %q", notice, endedMsg)
	}
	if list := listedSessions(t, phone); len(list) != 1 || !list[0].Current {
		t.Errorf("after signing the laptop out, the page lists:\n%v\nwant the phone's session only", list)
	}
	checkLoggedOut(t, laptop, srv.URL)
	checkLoggedIn(t, phone, srv.URL, "alice")

	// The laptop signs in again; "Sign out all other sessions".
	login(t, laptop, srv.URL, "alice")
	do(t, phone, "reopen the sessions page",
		chromedp.Navigate(srv.URL+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`li.session:not(.current)`)))
	do(t, phone, "sign out all other sessions",
		chromedp.Click(chromedp.CSS(`form[action="/sessions/others"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	if notice, want := text(t, phone, `.notice`), "Signed out 1 other session."; notice != want {
		t.Errorf("after signing out the other sessions, the page says %q, want %q", notice, want)
	}
	checkLoggedOut(t, laptop, srv.URL)
	checkLoggedIn(t, phone, srv.URL, "alice")
}

// findChromium returns the path of Chromium. The test skips when none is
// installed, except under CI, where it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := fmt.Sprintf("no Chromium at %s or on PATH (apt-get install -y chromium)", chromiumPath)
		if pgtest.InCI() {
			t.Fatalf("%s\n(this is a failure, not a skip, because CI is set: CI must run the browser test)", msg)
		}
		t.Skipf("skipped for want of a browser: %s\n(under CI this would fail)", msg)
	}
	return path
}

// startBrowser starts the headless Chromium at path with a new, empty
// profile, with the flags that keep it off the network this machine does
// not have, and returns its context. The browser is stopped (and its
// process waited for) when the test ends, or when browserBound has passed.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	bound, cancelBound := context.WithTimeout(context.Background(), browserBound)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(bound, opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		// Close the browser, then stop the allocator, which waits for the
		// process to exit, so that neither it nor a goroutine outlives
		// the test.
		if err := chromedp.Cancel(ctx); err != nil && bound.Err() == nil {
			t.Logf("close Chromium: %v", err)
		}
		cancelBrowser()
		cancelAlloc()
		cancelBound()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// newBrowserContext opens a tab in a new browser context of browser: a
// profile of its own, like an incognito window, with its own cookies.
func newBrowserContext(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a browser context: %v", err)
	}
	return ctx
}

// do runs the steps in ctx's tab and fails the test when one fails.
func do(t *testing.T, ctx context.Context, doing string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepBound)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", doing, err)
	}
}

// value runs the action in ctx's tab and returns its value, failing the test
// when it fails.
func value[T any](t *testing.T, ctx context.Context, doing string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepBound)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("%s: %v", doing, err)
	}
	return v
}

// text returns the text of the first element selector matches.
func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	return strings.TrimSpace(value(t, ctx, "read "+selector, chromedp.Text(chromedp.CSS(selector))))
}

// login signs in as user with the home page's form.
func login(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	do(t, ctx, "log in as "+user,
		chromedp.Navigate(base+"/"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/login"] input[name="user"]`), user),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/sessions"]`)))
}

// checkLoggedIn checks that the home page shows user logged in.
func checkLoggedIn(t *testing.T, ctx context.Context, base, user string) {
	t.Helper()
	do(t, ctx, "open the home page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`h1`)))
	if body := text(t, ctx, "body"); !strings.Contains(body, "Logged in as "+user) {
		t.Errorf("the home page does not show %s logged in:\n%s", user, body)
	}
}

// checkLoggedOut checks that the browser's next request finds it logged
// out: the home page offers the login form, and the sessions page sends it
// there.
func checkLoggedOut(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	do(t, ctx, "open the home page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`h1`)))
	if body := text(t, ctx, "body"); !strings.Contains(body, "Not logged in") {
		// The steps after this one need the browser logged out.
		t.Fatalf("the signed-out browser's home page does not say \"Not logged in\":\n%s", body)
	}
	do(t, ctx, "open the sessions page",
		chromedp.Navigate(base+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`h1`)))
	if loc := value(t, ctx, "read the location", chromedp.Location()); loc != base+"/" {
		t.Errorf("the signed-out browser's /sessions ends at %s, want the home page", loc)
	}
}

// listedSession is one entry of the sessions page.
type listedSession struct {
	Current bool   `json:"current"`
	Text    string `json:"text"`
	Buttons int    `json:"buttons"` // sign-out buttons in the entry
}

func (s listedSession) String() string {
	return fmt.Sprintf("current=%v buttons=%d %q", s.Current, s.Buttons, s.Text)
}

// listedSessions reads the sessions page's list.
func listedSessions(t *testing.T, ctx context.Context) []listedSession {
	t.Helper()
	return value(t, ctx, "read the sessions", chromedp.Evaluate[[]listedSession](`
		Array.from(document.querySelectorAll("li.session"), li => ({
			current: li.classList.contains("current"),
			text: li.innerText,
			buttons: li.querySelectorAll("button").length,
		}))`))
}

// checkNoSessionIDs checks that the page in ctx shows none of the stored
// session IDs, nor the session cookie of its browser context or of the
// others.
func checkNoSessionIDs(t *testing.T, ctx context.Context, a *app, schema string, others ...context.Context) {
	t.Helper()
	html := value(t, ctx, "read the page", chromedp.OuterHTML(chromedp.CSS("html")))
	rows, err := a.storage.db.Query("SELECT sid FROM " + pq.QuoteIdentifier(schema) + ".user_sessions")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var secrets []string
	for rows.Next() {
		var sid string
		if err := rows.Scan(&sid); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, sid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(secrets) < 2 {
		t.Fatalf("the table holds %d sessions, want the laptop's and the phone's", len(secrets))
	}
	for _, b := range append(others, ctx) {
		cookies := value(t, b, "read the cookies", func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
			return chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		})
		for _, c := range cookies.Cookies {
			if c.Name == sessionName {
				secrets = append(secrets, c.Value)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(html, s) {
			t.Errorf("the sessions page shows a session ID or cookie (%d bytes)", len(s))
		}
	}
}

// checkFitsPhone checks that the page in ctx, on a phoneWidth-wide
// viewport, needs no sideways scrolling, and saves a screenshot.
func checkFitsPhone(t *testing.T, ctx context.Context) {
	t.Helper()
	// A phone's browser widens the page's viewport to fit what is wider
	// than its screen (or to 980 px without a viewport meta tag), so the
	// screen, not the viewport, tells that the emulation holds.
	width := value(t, ctx, "read the screen width", chromedp.Evaluate[int](`screen.width`))
	if width != phoneWidth {
		t.Fatalf("the phone's screen is %d px wide, want %d", width, phoneWidth)
	}
	scroll := value(t, ctx, "read the page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if scroll > phoneWidth {
		t.Errorf("at %d px the page is %d px wide: it scrolls sideways", phoneWidth, scroll)
	}
	png := value(t, ctx, "take a screenshot", chromedp.FullScreenshot(100))
	path := filepath.Join(t.TempDir(), "sessions-375px.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the sessions page at %d px: %s", phoneWidth, path)
}
