package integration_test

// markbates/goth's gothic on pgstore with the default Config (JSONCodec):
// the whole login flow with goth's faux provider, and gothic's own tests
// (gothic_test.go at v1.82.0) that concern its store, written anew for a
// real store over HTTPS and a cookie jar. gothic keeps its provider
// session gzip-compressed in a Go string, which is not valid UTF-8:
// JSONCodec must store it losslessly, or BeginAuthHandler answers 400 (when
// the codec refuses it) or the callback cannot decompress it (when the
// codec mangles it).
//
// gothic.Store and goth's providers are package variables: these tests do
// not run in parallel with each other (Go runs them before the parallel
// tests), and each sets gothic.Store before its server starts.

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/markbates/goth"
	"github.com/markbates/goth/gothic"
	"github.com/markbates/goth/providers/faux"
)

var useFaux sync.Once

// gothicServer sets gothic.Store to a new pgstore store (default Config)
// and starts an HTTPS app with gothic's handlers:
//
//	/auth?provider=faux      BeginAuthHandler
//	/auth/callback           CompleteUserAuth; the user as JSON, or 401
//	/ctx/callback            the same, the provider in the context
//	/seed                    stores a faux session for Homer Simpson
//	/peek                    the faux provider session gothic holds
//	/logout                  gothic.Logout
func gothicServer(t *testing.T) (*httptest.Server, testDB) {
	t.Helper()
	useFaux.Do(func() { goth.UseProviders(&faux.Provider{}) })
	st, db := newStore(t)
	gothic.Store = st

	callback := func(w http.ResponseWriter, r *http.Request) {
		user, err := gothic.CompleteUserAuth(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		serveJSON(w, user)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", gothic.BeginAuthHandler)
	mux.HandleFunc("/auth/callback", callback)
	mux.HandleFunc("/ctx/callback", func(w http.ResponseWriter, r *http.Request) {
		callback(w, gothic.GetContextWithProvider(r, "faux"))
	})
	mux.HandleFunc("/seed", func(w http.ResponseWriter, r *http.Request) {
		s := faux.Session{Name: "Homer Simpson", Email: "homer@example.com"}
		if err := gothic.StoreInSession("faux", s.Marshal(), r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/peek", func(w http.ResponseWriter, r *http.Request) {
		s, err := gothic.Store.Get(r, gothic.SessionName)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		raw, ok := s.Values["faux"].(string)
		if !ok {
			serveJSON(w, map[string]any{"values": len(s.Values)})
			return
		}
		// Decompress it here, as the test of gothic does, rather than
		// through gothic, to see the bytes the store gave back.
		zr, err := gzip.NewReader(strings.NewReader(raw))
		if err != nil {
			http.Error(w, "the stored faux session is not gzip any more: "+err.Error(), http.StatusInternalServerError)
			return
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			http.Error(w, "the stored faux session does not decompress: "+err.Error(), http.StatusInternalServerError)
			return
		}
		serveJSON(w, map[string]any{"values": len(s.Values), "faux": string(plain)})
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		if err := gothic.Logout(w, r); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, db
}

// beginAuth starts a login in b and returns the provider's URL it was sent
// to, after checking the redirect.
func beginAuth(t *testing.T, b *browser, path string) *url.URL {
	t.Helper()
	resp, body := b.get(path)
	// 400 here is gothic's answer when the store refuses its session (a
	// codec that refuses strings that are not UTF-8).
	wantStatus(t, "GET "+path, resp, body, http.StatusTemporaryRedirect)
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if !strings.Contains(body, fmt.Sprintf(`<a href="%s">Temporary Redirect</a>`, html.EscapeString(loc.String()))) {
		t.Errorf("GET %s: the body does not link to %s:\n%s", path, loc, body)
	}
	return loc
}

// callback sends b back from the provider to path and returns the status
// and the user it got.
func callback(t *testing.T, b *browser, path string) (int, goth.User, string) {
	t.Helper()
	resp, body := b.get(path)
	var user goth.User
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &user); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode, user, body
}

// TestGothicLoginFlow is a login with the faux provider as a browser makes
// it: BeginAuthHandler redirects to the provider with a state, the
// provider sends the browser back with that state and a code, and
// CompleteUserAuth, with nothing but the jar's cookies, finds the provider
// session, gets the user and logs the gothic session out. The same
// callback replayed, from the browser or with the cookie copied before,
// is refused: the row is gone.
func TestGothicLoginFlow(t *testing.T) {
	srv, db := gothicServer(t)
	b := newBrowser(t, srv)

	auth := beginAuth(t, b, "/auth?provider=faux")
	state := auth.Query().Get("state")
	if auth.Host != "example.com" || state == "" {
		t.Fatalf("BeginAuthHandler sent the browser to %s; want faux's http://example.com/auth with a state", auth)
	}
	if n := db.rows(t); n != 1 {
		t.Fatalf("%d session rows after BeginAuthHandler, want 1", n)
	}
	stolen := b.cookie(gothic.SessionName)
	if stolen == nil {
		t.Fatalf("the browser holds no %s cookie after BeginAuthHandler", gothic.SessionName)
	}

	back := "/auth/callback?" + url.Values{"provider": {"faux"}, "state": {state}, "code": {"the-code"}}.Encode()
	status, user, body := callback(t, b, back)
	if status != http.StatusOK {
		t.Fatalf("callback: status %d, want 200: %s", status, body)
	}
	if user.Provider != "faux" || user.UserID != "id" || user.AccessToken != "access" {
		t.Errorf("callback returned %+v; want faux's user id with access token \"access\"", user)
	}
	if n := db.rows(t); n != 0 {
		t.Errorf("%d session rows after CompleteUserAuth, want 0 (it logs the gothic session out)", n)
	}
	if c := b.cookie(gothic.SessionName); c != nil {
		t.Errorf("the browser still holds %v after CompleteUserAuth", c)
	}

	// The browser replays the callback (back button, reload).
	if status, _, body := callback(t, b, back); status != http.StatusUnauthorized {
		t.Errorf("callback replayed by the browser: status %d, want 401: %s", status, body)
	}
	// Someone replays it with the cookie as it was before the callback.
	// A cookie store would still hold the provider session; this one has
	// deleted it.
	replay := newBrowser(t, srv)
	replay.client.Jar.SetCookies(replay.base, []*http.Cookie{{Name: stolen.Name, Value: stolen.Value, Path: "/", Secure: true}})
	if status, _, body := callback(t, replay, back); status != http.StatusUnauthorized {
		t.Errorf("callback replayed with the old cookie: status %d, want 401: %s", status, body)
	}
	if n := db.rows(t); n != 0 {
		t.Errorf("%d session rows after the replays, want 0", n)
	}
}

// TestGothicLogout: a login begun and abandoned is ended by gothic.Logout:
// row and cookie gone, and the callback then refused.
func TestGothicLogout(t *testing.T) {
	srv, db := gothicServer(t)
	b := newBrowser(t, srv)
	auth := beginAuth(t, b, "/auth?provider=faux")
	resp, body := b.get("/logout")
	wantStatus(t, "logout", resp, body, http.StatusOK)
	if n := db.rows(t); n != 0 {
		t.Errorf("%d session rows after Logout, want 0", n)
	}
	if c := b.cookie(gothic.SessionName); c != nil {
		t.Errorf("the browser still holds %v after Logout", c)
	}
	back := "/auth/callback?" + url.Values{"provider": {"faux"}, "state": {auth.Query().Get("state")}}.Encode()
	if status, _, body := callback(t, b, back); status != http.StatusUnauthorized {
		t.Errorf("callback after Logout: status %d, want 401: %s", status, body)
	}
}

// TestGothicBeginAuthHandler ports gothic's Test_BeginAuthHandler: the
// session BeginAuthHandler stored holds, under the provider's name, a
// gzip-compressed string that decompresses to the provider session whose
// auth URL the browser was sent to.
func TestGothicBeginAuthHandler(t *testing.T) {
	srv, db := gothicServer(t)
	b := newBrowser(t, srv)
	auth := beginAuth(t, b, "/auth?provider=faux")

	resp, body := b.get("/peek")
	wantStatus(t, "peek", resp, body, http.StatusOK)
	var peek struct {
		Values int
		Faux   string
	}
	if err := json.Unmarshal([]byte(body), &peek); err != nil {
		t.Fatalf("peek: %v\n%s", err, body)
	}
	if peek.Faux == "" {
		t.Fatalf("the session holds no faux provider session after BeginAuthHandler (%s); row: %s", body, db.sess(t))
	}
	s, err := (&faux.Provider{}).UnmarshalSession(peek.Faux)
	if err != nil {
		t.Fatalf("unmarshal the stored faux session %q: %v", peek.Faux, err)
	}
	if u, _ := s.GetAuthURL(); u != auth.String() {
		t.Errorf("stored auth URL %q, want the redirect's %q", u, auth)
	}
}

// TestGothicStoresCompressedBytes pins what gothic relies on: the string it
// stores (gzip output, not valid UTF-8) comes back from the database byte
// for byte.
func TestGothicStoresCompressedBytes(t *testing.T) {
	srv, _ := gothicServer(t)
	b := newBrowser(t, srv)
	resp, body := b.get("/seed")
	wantStatus(t, "seed", resp, body, http.StatusOK)
	resp, body = b.get("/peek")
	wantStatus(t, "peek", resp, body, http.StatusOK)
	var peek struct{ Faux string }
	if err := json.Unmarshal([]byte(body), &peek); err != nil {
		t.Fatalf("peek: %v\n%s", err, body)
	}
	want := faux.Session{Name: "Homer Simpson", Email: "homer@example.com"}
	if peek.Faux != want.Marshal() {
		t.Errorf("the faux session read back = %q, want %q", peek.Faux, want.Marshal())
	}
	// The string the store kept is gzip output, which starts with the
	// bytes 1f 8b: never valid UTF-8, so this is the case JSONCodec
	// must store losslessly.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(want.Marshal()))
	zw.Close()
	if utf8.Valid(z.Bytes()) {
		t.Errorf("gzip output %x is valid UTF-8: this test no longer covers strings that are not", z.Bytes())
	}
}

// TestGothicGetAuthURL ports gothic's Test_GetAuthURL: the auth URL is the
// provider's, with client_id, response_type code and a state, and two
// logins get different states.
func TestGothicGetAuthURL(t *testing.T) {
	srv, _ := gothicServer(t)
	first := beginAuth(t, newBrowser(t, srv), "/auth?provider=faux")
	second := beginAuth(t, newBrowser(t, srv), "/auth?provider=faux")
	q := first.Query()
	if first.Scheme != "http" || first.Host != "example.com" || !q.Has("client_id") || q.Get("response_type") != "code" || q.Get("state") == "" {
		t.Errorf("auth URL %s: want http://example.com with client_id, response_type=code and a state", first)
	}
	if q.Get("state") == second.Query().Get("state") {
		t.Errorf("two logins got the same state %q", q.Get("state"))
	}
}

// TestGothicCompleteUserAuth ports gothic's Test_CompleteUserAuth and its
// variants: with a stored provider session, CompleteUserAuth returns its
// user whether the provider is named in the query, found in the session,
// or put in the request's context; and gothic's Test_Logout: afterwards
// the gothic session is empty and gone.
func TestGothicCompleteUserAuth(t *testing.T) {
	srv, db := gothicServer(t)
	for _, path := range []string{
		"/auth/callback?provider=faux", // Test_CompleteUserAuth
		"/auth/callback",               // ...WithSessionDeducedProvider
		"/ctx/callback",                // ...WithContextParamProvider
	} {
		b := newBrowser(t, srv)
		resp, body := b.get("/seed")
		wantStatus(t, "seed", resp, body, http.StatusOK)
		status, user, body := callback(t, b, path)
		if status != http.StatusOK {
			t.Errorf("%s: status %d, want 200: %s", path, status, body)
			continue
		}
		if user.Name != "Homer Simpson" || user.Email != "homer@example.com" {
			t.Errorf("%s: user %+v, want Homer Simpson <homer@example.com>", path, user)
		}
		// Test_Logout: Logout after CompleteUserAuth leaves nothing.
		resp, body = b.get("/logout")
		wantStatus(t, path+": logout", resp, body, http.StatusOK)
		resp, body = b.get("/peek")
		wantStatus(t, path+": peek", resp, body, http.StatusOK)
		if body != `{"values":0}` {
			t.Errorf("%s: the gothic session after Logout: %s, want no values", path, body)
		}
		if n := db.rows(t); n != 0 {
			t.Errorf("%s: %d session rows after Logout, want 0", path, n)
		}
	}
}

// TestGothicStateValidation ports gothic's Test_StateValidation: the
// callback with the state given to the provider passes, one with another
// state is refused (and the provider session is gone after either).
func TestGothicStateValidation(t *testing.T) {
	srv, db := gothicServer(t)

	b := newBrowser(t, srv)
	beginAuth(t, b, "/auth?provider=faux&state=state_REAL")
	if status, _, body := callback(t, b, "/auth/callback?provider=faux&state=state_REAL"); status != http.StatusOK {
		t.Errorf("callback with the matching state: status %d, want 200: %s", status, body)
	}

	b = newBrowser(t, srv)
	beginAuth(t, b, "/auth?provider=faux&state=state_REAL")
	status, _, body := callback(t, b, "/auth/callback?provider=faux&state=state_FAKE")
	if status != http.StatusUnauthorized || !strings.Contains(body, "state token mismatch") {
		t.Errorf("callback with another state: status %d, want 401 state token mismatch: %s", status, body)
	}
	if n := db.rows(t); n != 0 {
		t.Errorf("%d session rows after the refused callback, want 0", n)
	}
}
