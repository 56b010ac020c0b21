package main

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

// keyEnv is the variable the tests hand the application's key in.
const keyEnv = "PGSTORE_TEST_SESSION_KEY"

// appTable is a table of the test's own with the application's store on
// it: hashKey, which the tests hand the command in keyEnv, and the client
// recorded.
func appTable(t *testing.T) (dsn, schema string, st *pgstore.Store, db *sql.DB) {
	t.Helper()
	dsn, schema, _, db = testTable(t)
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey}, SchemaName: schema, PruneInterval: -1, RecordClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// As docs/production.md has it: the variable's characters are the key.
	t.Setenv(keyEnv, string(hashKey))
	return dsn, schema, st, db
}

// login stores a session holding user_id from a client with the given
// user agent and address, through the application's store, and returns
// its cookie.
func login(t *testing.T, st *pgstore.Store, user any, userAgent, remoteAddr string) *http.Cookie {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "https://example.com/", nil)
	r.Header.Set("User-Agent", userAgent)
	r.RemoteAddr = remoteAddr
	s, err := st.New(r, cookieName)
	if err != nil {
		t.Fatal(err)
	}
	s.Values["user_id"] = user
	w := httptest.NewRecorder()
	if err := s.Save(r, w); err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Save set %d cookies", len(cookies))
	}
	return cookies[0]
}

// handles lists the handles the application's store gives a user's
// sessions.
func handles(t *testing.T, st *pgstore.Store, key string, value any) []string {
	t.Helper()
	list, err := st.ListSessions(context.Background(), key, value, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range list {
		out = append(out, in.Handle)
	}
	slices.Sort(out)
	return out
}

// sessions list shows the user's sessions, and only theirs, with the
// application's handles, their times and client, and never an ID; a user
// agent's terminal escapes are not passed to the terminal.
func TestSessionsList(t *testing.T) {
	dsn, schema, st, db := appTable(t)
	laptop := login(t, st, 42, "Firefox/140", "192.0.2.1:5000")
	phone := login(t, st, "42", "Evil\x1b[2J\u202eAgent", "198.51.100.7:443")
	other := login(t, st, 7, "Edge/1", "203.0.113.9:1")
	want := handles(t, st, "user_id", 42)
	if len(want) != 2 {
		t.Fatalf("the application lists %d sessions of user 42, want 2", len(want))
	}
	before := time.Now().Add(-time.Minute)

	out, _, code := runCLI(t, "sessions", "list", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42", "-hash-key-env", keyEnv, "-json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var got []sessionJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not a JSON array of sessions: %v", err)
	}
	var gotHandles []string
	agents := map[string]sessionJSON{}
	for _, s := range got {
		gotHandles = append(gotHandles, s.Handle)
		agents[s.UserAgent] = s
		if s.Created == nil || s.Created.Before(before) || s.LastActive == nil || s.LastActive.Before(before) ||
			s.Expires == nil || s.Expires.Before(time.Now().Add(29*24*time.Hour)) {
			t.Errorf("times: %+v", s)
		}
	}
	slices.Sort(gotHandles)
	if !slices.Equal(gotHandles, want) {
		t.Errorf("handles %q, want the application's %q", gotHandles, want)
	}
	if a := agents["Firefox/140"]; a.IP != "192.0.2.1" {
		t.Errorf("laptop: %+v", a)
	}
	if a := agents["Evil\x1b[2J\u202eAgent"]; a.IP != "198.51.100.7" {
		t.Errorf("phone: %+v", a)
	}

	// An application that decodes its variable.
	t.Setenv(keyEnv+"_HEX", hex.EncodeToString(hashKey))
	text, _, code := runCLI(t, "sessions", "list", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42", "-hash-key-env", "hex:"+keyEnv+"_HEX")
	if code != exitOK {
		t.Fatalf("text: exit %d", code)
	}
	for _, h := range want {
		if !strings.Contains(text, h) {
			t.Errorf("text output lacks handle %q", h)
		}
	}
	for _, s := range []string{"HANDLE", "Firefox/140", "192.0.2.1", "198.51.100.7", "Evil?[2J?Agent"} {
		if !strings.Contains(text, s) {
			t.Errorf("text output lacks %q", s)
		}
	}
	if strings.ContainsAny(text, "\x1b\u202e") {
		t.Errorf("text output passes the user agent's control characters on: %q", text)
	}
	ids := sids(t, db, schema)
	for _, output := range []string{out, text} {
		if strings.Contains(output, "Edge/1") || strings.Contains(output, "203.0.113.9") {
			t.Errorf("another user's session listed:\n%s", output)
		}
		for _, id := range ids {
			if strings.Contains(output, id) {
				t.Errorf("output holds session ID %q", id)
			}
		}
		for _, c := range []*http.Cookie{laptop, phone, other} {
			if strings.Contains(output, c.Value) {
				t.Errorf("output holds a cookie")
			}
		}
	}

	out, _, code = runCLI(t, "sessions", "list", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "1", "-hash-key-env", keyEnv)
	if code != exitOK || out != "no live sessions\n" {
		t.Errorf("a user without sessions: exit %d, %q", code, out)
	}
}

// sessions end ends the session with the handle, only if it is the
// user's: another user's handle ends nothing, and fails.
func TestSessionsEnd(t *testing.T) {
	dsn, schema, st, db := appTable(t)
	login(t, st, 42, "Firefox/140", "192.0.2.1:5000")
	login(t, st, 42, "Safari", "192.0.2.2:5000")
	login(t, st, 7, "Edge/1", "203.0.113.9:1")
	mine, theirs := handles(t, st, "user_id", 42), handles(t, st, "user_id", 7)

	out, stderr, code := runCLI(t, "sessions", "end", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42", "-handle", theirs[0], "-hash-key-env", keyEnv)
	if code != exitFailed || out != "" || !strings.Contains(stderr, "no live session whose user_id is 42 has handle") {
		t.Errorf("another user's handle: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if n := len(sids(t, db, schema)); n != 3 {
		t.Fatalf("another user's handle ended something: %d rows left", n)
	}

	out, _, code = runCLI(t, "sessions", "end", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42", "-handle", mine[0], "-hash-key-env", keyEnv)
	if code != exitOK || out != "ended 1 session\n" {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if got := handles(t, st, "user_id", 42); !slices.Equal(got, mine[1:]) {
		t.Errorf("user 42's sessions left: %q, want %q", got, mine[1:])
	}
	if got := handles(t, st, "user_id", 7); !slices.Equal(got, theirs) {
		t.Errorf("user 7's sessions left: %q, want %q", got, theirs)
	}
}

// In Express mode the handles come from the first secret, and an ended
// session stays ended: its tombstone is written.
func TestSessionsExpress(t *testing.T) {
	dsn, schema, _, db := testTable(t)
	const secret = "keyboard cat"
	st, err := pgstore.New(db, pgstore.Config{ExpressSecrets: []string{secret}, SchemaName: schema, TableName: "express_sessions", PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	login(t, st, 42, "Firefox/140", "192.0.2.1:5000")
	want := handles(t, st, "user_id", 42)
	t.Setenv(keyEnv, secret)

	out, _, code := runCLI(t, "sessions", "list", "-dsn", dsn, "-schema", schema, "-table", "express_sessions", "-key", "user_id", "-value", "42", "-express-secret-env", keyEnv, "-json")
	var got []sessionJSON
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 || got[0].Handle != want[0] {
		t.Fatalf("exit %d, output %q; want the handle %q", code, out, want)
	}
	out, _, code = runCLI(t, "sessions", "end", "-dsn", dsn, "-schema", schema, "-table", "express_sessions", "-key", "user_id", "-value", "42", "-handle", want[0], "-express-secret-env", keyEnv)
	if code != exitOK || out != "ended 1 session\n" {
		t.Fatalf("end: exit %d, output %q", code, out)
	}
	if got := handles(t, st, "user_id", 42); len(got) != 0 {
		t.Errorf("sessions left: %q", got)
	}
	var tombstones int
	if err := db.QueryRow(`SELECT count(*) FROM ` + qualified(schema, "express_sessions_tombstones")).Scan(&tombstones); err != nil || tombstones != 1 {
		t.Errorf("%d tombstones, %v; want the ended session's", tombstones, err)
	}
}

// The last activity is read from the expiry too, so list must know the
// application's MaxAge: with it, a session just used was last active now,
// not two months from now.
func TestSessionsListMaxAge(t *testing.T) {
	dsn, schema, _, db := appTable(t)
	opts := pgstore.DefaultOptions()
	opts.MaxAge = 90 * 24 * 60 * 60
	st, err := pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{hashKey}, SchemaName: schema, PruneInterval: -1, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	login(t, st, 42, "Firefox/140", "192.0.2.1:5000")
	out, _, code := runCLI(t, "sessions", "list", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42", "-hash-key-env", keyEnv, "-json", "-max-age", "7776000")
	var got []sessionJSON
	if code != exitOK || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if la := got[0].LastActive; la == nil || la.After(time.Now().Add(time.Minute)) || la.Before(time.Now().Add(-time.Hour)) {
		t.Errorf("last active %v, want about now", la)
	}
}
