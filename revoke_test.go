package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// unreadableMembers are JSON members PostgreSQL's json type stores but
// that make sess ->> 'any key' fail for the whole document: SQLSTATE
// 22P05 for \u0000, 22P02 for half a surrogate pair, wherever they sit.
var unreadableMembers = []struct{ name, member string }{
	{"NUL in a value", `"note":"a\u0000b"`},
	{"NUL in a key", `"\u0000k":1`},
	{"NUL nested", `"prefs":{"x":[1,{"y":"\u0000"}]}`},
	{"NUL after an escaped backslash", `"note":"\\\u0000"`},
	{"lone high surrogate", `"note":"x\ud800y"`},
	{"lone low surrogate in a key", `"\udc00":true`},
	{"high surrogate before another", `"note":"\ud83d\ud83d\ude00"`},
}

// nulSessions is a table of Go and SQL-written sessions, some holding
// what ->> cannot read, and what Revoke(ctx, "user_id", 42) must leave.
type nulSessions struct {
	matching  []string // sids of user 42's sessions
	survivors []string // sids of everyone else's
	keep      *sessions.Session
}

// seedNULSessions fills st's table. User 42 has Go sessions (one of them
// holding a NUL), and SQL-written rows (as Node writes them) holding each
// unreadable member before and after user_id; user 7 has the same; and
// some rows hold the unreadable text in user_id itself, which equals
// nothing.
func seedNULSessions(t *testing.T, db *sql.DB, st *pgstore.Store) nulSessions {
	t.Helper()
	table := qualified(st.SchemaName(), pgstore.DefaultTableName)
	var ns nulSessions
	goSID := func(c *http.Cookie) string { return pgstore.HashID(decodeID(t, c)) }
	for range 2 {
		ns.matching = append(ns.matching, goSID(login(t, st, map[any]any{"user_id": 42})))
	}
	ns.survivors = append(ns.survivors, goSID(login(t, st, map[any]any{"user_id": 7})))
	c := goSessionWithNUL(t, db, st, 42)
	ns.matching = append(ns.matching, goSID(c))
	_, ns.keep = get(t, st, c)
	ns.survivors = append(ns.survivors, goSID(goSessionWithNUL(t, db, st, 7)))

	insert := func(sid, doc string) {
		t.Helper()
		if !json.Valid([]byte(doc)) {
			t.Fatalf("%s: invalid JSON %s", sid, doc)
		}
		if _, err := db.Exec(`INSERT INTO `+table+` VALUES ($1, $2::text::json, now() + interval '1 day')`, sid, doc); err != nil {
			t.Fatalf("insert %s %s: %v", sid, doc, err)
		}
	}
	for i, u := range unreadableMembers {
		for _, user := range []int{42, 7} {
			before := fmt.Sprintf(`{"cookie":{},%s,"user_id":%d}`, u.member, user)
			after := fmt.Sprintf(`{"cookie":{"path":"/"},"user_id":%d,%s}`, user, u.member)
			for j, doc := range []string{before, after} {
				sid := fmt.Sprintf("node-%d-%d-%d", user, i, j)
				insert(sid, doc)
				if user == 42 {
					ns.matching = append(ns.matching, sid)
				} else {
					ns.survivors = append(ns.survivors, sid)
				}
			}
		}
	}
	// The unreadable text is in user_id's own value: no text equals it.
	for i, value := range []string{`"42\u0000"`, `"\u0000"`, `"42\ud800"`, `"\udc0042"`} {
		sid := fmt.Sprintf("node-own-%d", i)
		insert(sid, `{"cookie":{},"user_id":`+value+`}`)
		ns.survivors = append(ns.survivors, sid)
	}
	// Readable, though they look otherwise: an escaped backslash before
	// u0000 is text, a whole surrogate pair is a character, and the key
	// may itself be written with escapes.
	for i, doc := range []string{
		`{"note":"\\u0000","user_id":42}`,
		`{"note":"\ud83d\ude00","user_id":42,"x":"\u0000"}`,
		`{"\u0075ser_id":42,"x":"\u0000"}`,
	} {
		sid := fmt.Sprintf("node-readable-%d", i)
		insert(sid, doc)
		ns.matching = append(ns.matching, sid)
	}
	// The premise: the rows make ->> fail for every key.
	var n int
	err := db.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE sess ->> 'user_id' = '42'`).Scan(&n)
	if state := sqlStateOf(err); state != "22P05" && state != "22P02" {
		t.Fatalf("sess ->> 'user_id' over the seeded table: %d, %v; want SQLSTATE 22P05 or 22P02", n, err)
	}
	return ns
}

// goSessionWithNUL makes a Go session of user holding a string with a NUL.
// While the store refuses to save one (ErrEncode), the row gets the same
// text by SQL, as Go would write it; once it saves one, it is Go's own.
func goSessionWithNUL(t *testing.T, db *sql.DB, st *pgstore.Store, user int) *http.Cookie {
	t.Helper()
	r, s := get(t, st, nil)
	s.Values["user_id"] = user
	s.Values["note"] = "a\x00b"
	w := httptest.NewRecorder()
	err := st.Save(r, w, s)
	if err == nil {
		return responseCookie(w, cookieName)
	}
	if !errors.Is(err, pgstore.ErrEncode) {
		t.Fatalf("Save of a NUL: %v", err)
	}
	s.Values["note"] = "placeholder"
	c := save(t, st, r, s)
	if _, err := db.Exec(`UPDATE `+qualified(st.SchemaName(), pgstore.DefaultTableName)+
		` SET sess = replace(sess::text, '"placeholder"', '"a\u0000b"')::json WHERE sid = $1`, pgstore.HashID(decodeID(t, c))); err != nil {
		t.Fatal(err)
	}
	return c
}

func sqlStateOf(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

func sids(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	return column(t, db, `SELECT sid FROM `+qualified(schema, pgstore.DefaultTableName)+` ORDER BY sid`)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// One session holding \u0000 made every Revoke fail (22P05 from
// sess ->> 'key', which de-escapes the whole document): a password change
// no longer ended anyone's sessions. Revoke and RevokeOthers now delete
// exactly the matching sessions, whatever they and the others hold.
func TestOneNULSessionDoesNotDisableRevoke(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		t.Run("Revoke", func(t *testing.T) {
			st := newTestStore(t, db, pgstore.Config{HashIDs: true})
			ns := seedNULSessions(t, db, st)
			n, err := st.Revoke(context.Background(), "user_id", 42)
			if err != nil || n != int64(len(ns.matching)) {
				t.Fatalf("Revoke: %d, %v; want %d", n, err, len(ns.matching))
			}
			if got, want := sids(t, db, st.SchemaName()), sorted(ns.survivors); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("left\n%v\nwant\n%v", got, want)
			}
		})
		t.Run("RevokeOthers", func(t *testing.T) {
			st := newTestStore(t, db, pgstore.Config{HashIDs: true})
			ns := seedNULSessions(t, db, st)
			n, err := st.RevokeOthers(context.Background(), "user_id", 42, ns.keep)
			if err != nil || n != int64(len(ns.matching)-1) {
				t.Fatalf("RevokeOthers: %d, %v; want %d", n, err, len(ns.matching)-1)
			}
			want := sorted(append(ns.survivors, pgstore.HashID(ns.keep.ID)))
			if got := sids(t, db, st.SchemaName()); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("left\n%v\nwant\n%v", got, want)
			}
		})
	})
}

// The same with the real Express app writing the sessions: Node stores
// whatever a handler copies into the session, NUL and half surrogate pairs
// included, and Go's Revoke must still end alice's sessions, Node's and
// Go's, and no one else's.
func TestExpressNULSessionDoesNotDisableRevoke(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	table := qualified(schema, pgstore.DefaultTableName)
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		if _, err := db.Exec(`DELETE FROM ` + table); err != nil {
			t.Fatal(err)
		}
		aliceNUL, _ := node.login(t, "alice")
		node.set(t, aliceNUL, "note", `"a\u0000b"`)
		alicePlain, _ := node.login(t, "alice")
		aliceGo := goLogin(t, st, "alice")
		bob, bobSID := node.login(t, "bob")
		node.set(t, bob, "\x00k", `{"x":["\u0000"]}`)
		carol, carolSID := node.login(t, "carol")
		node.set(t, carol, "half", `"x\ud800y"`)

		var bobSess string
		if err := db.QueryRow(`SELECT sess::text FROM `+table+` WHERE sid = $1`, bobSID).Scan(&bobSess); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(bobSess, `"\u0000k":{"x":["\u0000"]}`) {
			t.Fatalf("Node wrote bob's session as %s; want a \\u0000 in a key and a nested value", bobSess)
		}
		var n int
		err := db.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE sess ->> 'user' = 'alice'`).Scan(&n)
		if state := sqlStateOf(err); state != "22P05" && state != "22P02" {
			t.Fatalf("sess ->> 'user' over Node's sessions: %d, %v; want SQLSTATE 22P05 or 22P02", n, err)
		}

		if n, err := st.Revoke(context.Background(), "user", "alice"); err != nil || n != 3 {
			t.Fatalf("Revoke(user, alice): %d, %v; want 3", n, err)
		}
		for _, c := range []string{aliceNUL, alicePlain} {
			if w := node.whoami(t, c); w.User != nil {
				t.Errorf("a revoked session still logs Node in as %v", w.User)
			}
		}
		if _, s := goGet(t, st, aliceGo); !s.IsNew {
			t.Error("a revoked Go session still loads")
		}
		if w := node.whoami(t, bob); w.User != "bob" || w.SID != bobSID {
			t.Errorf("bob's session after Revoke(alice): %+v", w)
		}
		if w := node.whoami(t, carol); w.User != "carol" || w.SID != carolSID {
			t.Errorf("carol's session after Revoke(alice): %+v", w)
		}

		// Sign out everywhere else, from the session holding the NUL.
		keepCookie, keepSID := node.login(t, "alice")
		node.set(t, keepCookie, "note", `"\u0000"`)
		other, _ := node.login(t, "alice")
		node.set(t, other, "note", `"\u0000"`)
		_, keep := goGet(t, st, keepCookie)
		if keep.IsNew || keep.ID != keepSID {
			t.Fatalf("Go did not load Node's session to keep: IsNew %v", keep.IsNew)
		}
		if n, err := st.RevokeOthers(context.Background(), "user", "alice", keep); err != nil || n != 1 {
			t.Fatalf("RevokeOthers(user, alice): %d, %v; want 1", n, err)
		}
		if w := node.whoami(t, keepCookie); w.User != "alice" {
			t.Errorf("the kept session: %+v", w)
		}
		if w := node.whoami(t, other); w.User != nil {
			t.Errorf("alice's other session survived RevokeOthers: %+v", w)
		}
		if w := node.whoami(t, bob); w.User != "bob" {
			t.Errorf("bob's session after RevokeOthers(alice): %+v", w)
		}
	})
}

// docsIndex is the index docs/operations.md recommends for Revoke by
// user_id, as written there. Its expression must be the one Revoke
// sends, or the planner cannot use it.
const docsIndex = `CREATE INDEX user_sessions_user_id_idx ON user_sessions (pgstore_sess_text(sess, 'user_id'))`

// The index the docs recommended before, on (sess ->> 'user_id'), cannot
// even be built while a row holds \u0000. The recommended one can, and
// Revoke's statement uses it, planned for its values and generically (as
// pgx does after five runs), on a table of 10,000 sessions.
func TestRevokeUsesRecommendedIndex(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})
	table := qualified(st.SchemaName(), pgstore.DefaultTableName)
	// 10,000 sessions of 1,000 users, one in 100 holding a NUL.
	if _, err := db.Exec(`INSERT INTO ` + table + `
		SELECT 's' || g, ('{"cookie":{},"user_id":' || (10000 + g % 1000) ||
			CASE WHEN g % 100 = 0 THEN ',"note":"\u0000"' ELSE '' END || '}')::json, now() + interval '1 day'
		FROM generate_series(1, 10000) g`); err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`SET search_path TO "` + st.SchemaName() + `"`)
	_, err = conn.ExecContext(ctx, `CREATE INDEX ON user_sessions ((sess ->> 'user_id'))`)
	if state := sqlStateOf(err); state != "22P05" {
		t.Fatalf("the former index on (sess ->> 'user_id'): %v; want SQLSTATE 22P05", err)
	}
	exec(docsIndex)
	exec(`ANALYZE user_sessions`)
	exec(`RESET search_path`)
	exec(`PREPARE revoke AS ` + st.RevokeSQL("user_id"))
	defer conn.ExecContext(context.Background(), `DEALLOCATE revoke`)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		exec(`SET plan_cache_mode = ` + mode)
		var plan string
		if err := conn.QueryRowContext(ctx, `EXPLAIN (FORMAT JSON) EXECUTE revoke('10042', '')`).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, `"Index Name": "user_sessions_user_id_idx"`) {
			t.Errorf("%s: Revoke does not use the recommended index:\n%s", mode, plan)
		}
	}
	exec(`RESET plan_cache_mode`)
	// And through it, Revoke finds the user's 10 sessions, the one
	// holding a NUL among them.
	if n, err := st.Revoke(ctx, "user_id", 10000); err != nil || n != 10 {
		t.Errorf("Revoke(user_id, 10000): %d, %v; want 10", n, err)
	}
}
