package integration_test

// gorilla/sessions' own tests (sessions_test.go, store_test.go at v1.4.0)
// that apply to a server-side store, written anew for pgstore with its
// default Config, over HTTPS and a cookie jar rather than a recorder
// whose Set-Cookie is copied by hand.

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// flashMessage is the custom flash type of gorilla's TestFlashes.
type flashMessage struct {
	Type    int
	Message string
}

// serveJSON writes v as the response, or a 500 when it cannot.
func serveJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// TestFlashes ports gorilla's TestFlashes: flashes added in one request are
// read, once, in the next, under the default key and a custom one, and
// reading them consumes them in the database too (a server-side store
// must write the emptied session back). Custom types come back as
// JSONCodec documents: a struct as its JSON object.
func TestFlashes(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/add", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session-key")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if f := s.Flashes(); len(f) != 0 {
			http.Error(w, "flashes before any were added", http.StatusInternalServerError)
			return
		}
		s.AddFlash("foo")
		s.AddFlash("bar")
		s.AddFlash("baz", "custom_key")
		s.AddFlash(flashMessage{42, "foo"}, "typed")
		// gorilla's test saves through the request's registry.
		if err := sessions.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session-key")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		seen := map[string][]any{
			"default":      s.Flashes(),
			"defaultAgain": s.Flashes(),
			"custom":       s.Flashes("custom_key"),
			"customAgain":  s.Flashes("custom_key"),
			"typed":        s.Flashes("typed"),
		}
		if err := sessions.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		serveJSON(w, seen)
	})
	mux.HandleFunc("/names", func(w http.ResponseWriter, r *http.Request) {
		// gorilla's registry refuses a cookie name that cannot be one.
		if _, err := st.Get(r, "session:key"); err == nil || !strings.Contains(err.Error(), "invalid character in cookie name") {
			http.Error(w, "Get with the name session:key: error "+errString(err)+", want the registry's invalid cookie name error", http.StatusInternalServerError)
			return
		}
		// A shallow copy of the request shares its registry, so it sees
		// the session the first Get returned, unsaved values included.
		s, err := st.Get(r, "session-key")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.Values["test"] = "test-value"
		again, err := st.Get(r.WithContext(r.Context()), "session-key")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if again.Values["test"] != "test-value" {
			http.Error(w, "a shallow copy of the request lost the session's unsaved value", http.StatusInternalServerError)
			return
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)

	resp, body := b.get("/add")
	wantStatus(t, "add flashes", resp, body, http.StatusOK)
	setCookie := resp.Header.Get("Set-Cookie")
	// gorilla's CookieStore defaults to SameSite=None; pgstore's default
	// options are Lax, and Secure as gorilla's test also asks.
	if !strings.Contains(setCookie, "Secure") || !strings.Contains(setCookie, "SameSite=Lax") || !strings.Contains(setCookie, "HttpOnly") {
		t.Errorf("Set-Cookie %q: want Secure, HttpOnly and SameSite=Lax (pgstore's default options)", setCookie)
	}
	if b.cookie("session-key") == nil {
		t.Fatal("the jar holds no session-key cookie after the flashes were saved")
	}

	resp, body = b.get("/read")
	wantStatus(t, "read flashes", resp, body, http.StatusOK)
	var seen map[string][]any
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatalf("read flashes: %v\n%s", err, body)
	}
	want := map[string][]any{
		"default":      {"foo", "bar"},
		"defaultAgain": nil,
		"custom":       {"baz"},
		"customAgain":  nil,
		// JSONCodec: a struct comes back as its JSON object (numbers in
		// this response are JSON's float64 again).
		"typed": {map[string]any{"Type": float64(42), "Message": "foo"}},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("flashes read = %#v\nwant %#v", seen, want)
	}

	// Consumed flashes stay consumed: the next request finds none.
	resp, body = b.get("/read")
	wantStatus(t, "read flashes again", resp, body, http.StatusOK)
	if err := json.Unmarshal([]byte(body), &seen); err != nil {
		t.Fatalf("read flashes again: %v\n%s", err, body)
	}
	for k, v := range seen {
		if len(v) != 0 {
			t.Errorf("flashes %s after they were read and saved = %v, want none", k, v)
		}
	}
	if n := db.rows(t); n != 1 {
		t.Errorf("%d session rows, want 1 (one browser)", n)
	}

	resp, body = b.get("/names")
	wantStatus(t, "cookie names and the registry", resp, body, http.StatusOK)
}

// TestGH8OptionsCopied ports gorilla's TestGH8CookieStore and
// TestGH8FilesystemStore: each session gets its own copy of the store's
// Options, so changing one session's options changes neither the store's
// nor the next session's.
func TestGH8OptionsCopied(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	st.Options.Path = "/" // set before serving, as gorilla's test does
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.New(r, "hello")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.Options.Path = "/foo"
		if st.Options.Path != "/" {
			http.Error(w, "changing a session's Path changed the store's to "+st.Options.Path, http.StatusInternalServerError)
			return
		}
		next, err := st.New(r, "other")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if next.Options.Path != "/" {
			http.Error(w, "the next session's Path is "+next.Options.Path+", want /", http.StatusInternalServerError)
			return
		}
		s.Values["n"] = 1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	resp, body := b.get("/")
	wantStatus(t, "GET /", resp, body, http.StatusOK)
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "Path=/foo") {
		t.Errorf("Set-Cookie %q: want the session's own Path=/foo", sc)
	}
}

// TestGH2MaxLength ports gorilla's TestGH2MaxLength: a session longer than
// MaxLength is refused (pgstore.ErrTooLarge, nothing written, no cookie),
// and a larger MaxLength lets the same session through.
func TestGH2MaxLength(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	big := make([]byte, 8192) // stored as base64: about 11 KB
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "my-session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.URL.Path == "/read" {
			b, _ := s.Values["big"].(string)
			serveJSON(w, len(b))
			return
		}
		s.Values["big"] = big
		if err := s.Save(r, w); errors.Is(err, pgstore.ErrTooLarge) {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})

	st.MaxLength(4096)
	srv := httptest.NewTLSServer(handler)
	b := newBrowser(t, srv)
	resp, body := b.get("/save")
	srv.Close() // waits for the handler: MaxLength may change after it
	wantStatus(t, "save past MaxLength(4096)", resp, body, http.StatusRequestEntityTooLarge)
	if n := db.rows(t); n != 0 {
		t.Errorf("%d rows after a save refused as too large, want 0", n)
	}
	if c := b.cookie("my-session"); c != nil {
		t.Errorf("a refused save set the cookie %v", c)
	}

	st.MaxLength(4096 * 3) // a bit more than the encoded value
	srv = httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	b = newBrowser(t, srv)
	resp, body = b.get("/save")
	wantStatus(t, "save within MaxLength(12288)", resp, body, http.StatusOK)
	resp, body = b.get("/read")
	wantStatus(t, "read", resp, body, http.StatusOK)
	if body != "10924" { // len(base64(8192 bytes))
		t.Errorf("the stored value read back is %s base64 characters long, want 10924", body)
	}
}

// TestDeleteMaxAgeNegative ports gorilla's TestGH8FilesystemStoreDelete:
// MaxAge -1 deletes the session. Here the row must be gone and the cookie
// expired in the browser, and the old cookie, replayed, must find nothing
// (FilesystemStore's fault is to bring such a session back under its old
// ID).
func TestDeleteMaxAgeNegative(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/save", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Get(r, "hello")
		s.Values["user"] = "alice"
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/delete", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Get(r, "hello")
		s.Options.MaxAge = -1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "hello")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		serveJSON(w, s.Values["user"])
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)

	resp, body := b.get("/save")
	wantStatus(t, "save", resp, body, http.StatusOK)
	old := b.cookie("hello")
	if old == nil || db.rows(t) != 1 {
		t.Fatalf("after save: cookie %v, %d rows; want a cookie and 1 row", old, db.rows(t))
	}
	resp, body = b.get("/delete")
	wantStatus(t, "delete", resp, body, http.StatusOK)
	if n := db.rows(t); n != 0 {
		t.Errorf("%d rows after MaxAge -1, want 0", n)
	}
	if c := b.cookie("hello"); c != nil {
		t.Errorf("the browser still holds %v after MaxAge -1", c)
	}
	if _, body := b.get("/whoami"); body != "null" {
		t.Errorf("whoami after the delete = %s, want null", body)
	}

	// Someone who kept the old cookie gets an empty session.
	thief := newBrowser(t, srv)
	thief.client.Jar.SetCookies(thief.base, []*http.Cookie{{Name: old.Name, Value: old.Value, Path: "/", Secure: true}})
	if _, body := thief.get("/whoami"); body != "null" {
		t.Errorf("whoami with the deleted session's cookie = %s, want null", body)
	}
	if n := db.rows(t); n != 0 {
		t.Errorf("%d rows after the old cookie was replayed, want 0", n)
	}
}

// TestMaxAgeZeroIsBrowserSession covers gorilla's
// TestGH8FilesystemStoreDelete2 (a Save with MaxAge 0), where pgstore
// departs from FilesystemStore on purpose: MaxAge 0 means a cookie that
// lasts as long as the browser runs (no Max-Age, no Expires), as it does
// for gorilla's CookieStore, and the session lives on, not deleted.
func TestMaxAgeZeroIsBrowserSession(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/save", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Get(r, "hello")
		s.Values["user"] = "alice"
		s.Options.MaxAge = 0
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Get(r, "hello")
		serveJSON(w, s.Values["user"])
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	resp, body := b.get("/save")
	wantStatus(t, "save with MaxAge 0", resp, body, http.StatusOK)
	sc := resp.Header.Get("Set-Cookie")
	if sc == "" || strings.Contains(sc, "Max-Age") || strings.Contains(sc, "Expires") {
		t.Errorf("Set-Cookie %q: want a browser-session cookie (no Max-Age, no Expires)", sc)
	}
	if n := db.rows(t); n != 1 {
		t.Errorf("%d rows after a save with MaxAge 0, want 1", n)
	}
	if _, body := b.get("/whoami"); body != `"alice"` {
		t.Errorf("whoami = %s, want \"alice\"", body)
	}
}

// TestNewSessionSaved ports gorilla's TestCookieStoreMapPanic: a session
// made by sessions.NewSession, not by the store, saves without panicking,
// and here it is written and read back.
func TestNewSessionSaved(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/save", func(w http.ResponseWriter, r *http.Request) {
		s := sessions.NewSession(st, "hello")
		s.Values["data"] = "hello-world"
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		s, _ := st.Get(r, "hello")
		serveJSON(w, s.Values["data"])
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	resp, body := b.get("/save")
	wantStatus(t, "save a sessions.NewSession", resp, body, http.StatusOK)
	if n := db.rows(t); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
	if _, body := b.get("/read"); body != `"hello-world"` {
		t.Errorf("read = %s, want \"hello-world\"", body)
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}
