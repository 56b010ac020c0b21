package integration_test

// Code written for gorilla's own stores, which configures the store after
// creating it, compiled unchanged against pgstore: only the constructor
// differs. gorilla's CookieStore has Options and MaxAge; its
// FilesystemStore has those and MaxLength (CookieStore sets a maximum
// length on its codecs instead). configureCookieStore,
// configureFilesystemStore and configurePgstore hold that code, which
// TestGorillaStoreSetupUnchanged checks statement for statement, and
// TestGorillaStoreSetup shows what it does on pgstore.

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// configureCookieStore is setup code as written for gorilla's CookieStore
// (after sessions.NewCookieStore(key)).
func configureCookieStore(store *sessions.CookieStore) {
	store.Options = &sessions.Options{
		Path:     "/app",
		MaxAge:   3600,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   true,
	}
	// Secure off: TestGorillaStoreSetup serves plain HTTP
	// (httptest.NewServer), as the code this stands for did in
	// development.
	store.Options.Secure = false
	store.MaxAge(2 * 3600)
}

// configureFilesystemStore is configureCookieStore for gorilla's
// FilesystemStore, which also bounds the session's length.
func configureFilesystemStore(store *sessions.FilesystemStore) {
	store.Options = &sessions.Options{
		Path:     "/app",
		MaxAge:   3600,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   true,
	}
	// Secure off: TestGorillaStoreSetup serves plain HTTP
	// (httptest.NewServer), as the code this stands for did in
	// development.
	store.Options.Secure = false
	store.MaxAge(2 * 3600)
	store.MaxLength(4096)
}

// configurePgstore is configureFilesystemStore with the store's type
// changed.
func configurePgstore(store *pgstore.Store) {
	store.Options = &sessions.Options{
		Path:     "/app",
		MaxAge:   3600,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   true,
	}
	// Secure off: TestGorillaStoreSetup serves plain HTTP
	// (httptest.NewServer), as the code this stands for did in
	// development.
	store.Options.Secure = false
	store.MaxAge(2 * 3600)
	store.MaxLength(4096)
}

// TestGorillaStoreSetupUnchanged checks that the setup functions differ
// in nothing but the store's type (CookieStore's lacking MaxLength), and
// that gorilla's stores still take that code as they always did.
func TestGorillaStoreSetupUnchanged(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "gorilla_store_setup_test.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	stmts := map[string][]string{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "configure") {
			continue
		}
		for _, st := range fn.Body.List {
			var sb strings.Builder
			if err := printer.Fprint(&sb, fset, st); err != nil {
				t.Fatal(err)
			}
			stmts[fn.Name.Name] = append(stmts[fn.Name.Name], sb.String())
		}
	}
	pg, fs, cs := stmts["configurePgstore"], stmts["configureFilesystemStore"], stmts["configureCookieStore"]
	if len(pg) == 0 || !slices.Equal(pg, fs) {
		t.Errorf("the setup code differs between pgstore and FilesystemStore:\n%s\n--\n%s", strings.Join(pg, "\n"), strings.Join(fs, "\n"))
	}
	if len(fs) == 0 || !slices.Equal(cs, fs[:len(fs)-1]) || fs[len(fs)-1] != "store.MaxLength(4096)" {
		t.Errorf("the CookieStore setup is not the FilesystemStore setup less MaxLength:\n%s\n--\n%s", strings.Join(cs, "\n"), strings.Join(fs, "\n"))
	}

	c := sessions.NewCookieStore(randomKey(t))
	configureCookieStore(c)
	fsys := sessions.NewFilesystemStore(t.TempDir(), randomKey(t))
	configureFilesystemStore(fsys)
	for name, o := range map[string]*sessions.Options{"CookieStore": c.Options, "FilesystemStore": fsys.Options} {
		if o.Path != "/app" || o.MaxAge != 7200 || o.Secure || !o.HttpOnly || o.SameSite != http.SameSiteStrictMode {
			t.Errorf("%s options after the setup: %+v", name, o)
		}
	}
}

// TestGorillaStoreSetup runs the setup written for gorilla's stores on a pgstore
// store with the default Config and checks what it asked for: the cookie's
// attributes, the session's lifetime in the browser and in the database,
// and ErrTooLarge past MaxLength with nothing written.
func TestGorillaStoreSetup(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	configurePgstore(store)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /app/login", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		s.Values["user"] = r.PostFormValue("user")
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /app/note", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		s.Values["note"] = r.PostFormValue("note")
		if err := s.Save(r, w); errors.Is(err, pgstore.ErrTooLarge) {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	whoami := func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		note, _ := s.Values["note"].(string)
		serveJSON(w, map[string]any{"user": s.Values["user"], "note": len(note)})
	}
	mux.HandleFunc("GET /app/whoami", whoami)
	mux.HandleFunc("GET /elsewhere/whoami", whoami)
	srv := httptest.NewServer(mux) // plain HTTP: see configurePgstore
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)

	resp, body := b.post("/app/login", url.Values{"user": {"alice"}})
	wantStatus(t, "login", resp, body, http.StatusOK)
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %d cookies, want 1: %v", len(cookies), resp.Header["Set-Cookie"])
	}
	c := cookies[0]
	if c.Path != "/app" || c.MaxAge != 7200 || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
		t.Errorf("Set-Cookie %q: want Path=/app, Max-Age=7200, HttpOnly, SameSite=Strict, not Secure", resp.Header.Get("Set-Cookie"))
	}
	if left := time.Until(c.Expires); left < 7100*time.Second || left > 7300*time.Second {
		t.Errorf("cookie Expires %v is %v away, want about 2 hours", c.Expires, left)
	}
	var stored float64
	q := `SELECT extract(epoch FROM expire - (now() AT TIME ZONE 'UTC')) FROM "` + db.schema + `".` + pgstore.DefaultTableName
	if err := db.db.QueryRow(q).Scan(&stored); err != nil {
		t.Fatalf("read the row's expiry: %v", err)
	}
	if stored < 7100 || stored > 7300 {
		t.Errorf("the row expires in %.0f s, want about 7200 (store.MaxAge(2 * 3600))", stored)
	}

	// The browser sends the cookie under /app only.
	if _, body := b.get("/app/whoami"); body != `{"note":0,"user":"alice"}` {
		t.Errorf("GET /app/whoami = %s, want alice", body)
	}
	if _, body := b.get("/elsewhere/whoami"); body != `{"note":0,"user":null}` {
		t.Errorf("GET /elsewhere/whoami = %s, want no user (the cookie's Path is /app)", body)
	}

	resp, body = b.post("/app/note", url.Values{"note": {strings.Repeat("x", 5000)}})
	wantStatus(t, "a note past MaxLength(4096)", resp, body, http.StatusRequestEntityTooLarge)
	resp, body = b.post("/app/note", url.Values{"note": {strings.Repeat("x", 3000)}})
	wantStatus(t, "a note within MaxLength(4096)", resp, body, http.StatusOK)
	if _, body := b.get("/app/whoami"); body != `{"note":3000,"user":"alice"}` {
		t.Errorf("GET /app/whoami = %s, want alice with the 3000-byte note, the larger one refused", body)
	}
	if n := db.rows(t); n != 1 {
		t.Errorf("%d session rows, want 1", n)
	}
}
