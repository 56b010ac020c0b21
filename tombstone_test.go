package pgstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// heldRequest is a Node request that has loaded its session and waits,
// before saving it, for release.
type heldRequest struct {
	app    *expressApp
	token  string
	body   *bufio.Reader
	loaded whoami
}

var holdSeq atomic.Int64

// hold sends POST /hold with the session cookie and returns once Node has
// loaded the session. With incr, the request changes the session before
// it saves it; without, it only reads it.
func (a *expressApp) hold(t *testing.T, cookie string, incr bool) *heldRequest {
	t.Helper()
	h := &heldRequest{app: a, token: fmt.Sprintf("hold-%d", holdSeq.Add(1))}
	path := "/hold?token=" + url.QueryEscape(h.token)
	if incr {
		path += "&incr=1"
	}
	req, err := http.NewRequest(http.MethodPost, a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", expressCookieName+"="+cookie)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("node POST /hold: %v\nstderr:\n%s", err, a.stderr)
	}
	t.Cleanup(func() { resp.Body.Close() })
	h.body = bufio.NewReader(resp.Body)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(h.body)
		t.Fatalf("node POST /hold: status %d: %s\nstderr:\n%s", resp.StatusCode, body, a.stderr)
	}
	h.loaded = h.line(t)
	return h
}

func (h *heldRequest) line(t *testing.T) whoami {
	t.Helper()
	line, err := h.body.ReadBytes('\n')
	if err != nil {
		t.Fatalf("node /hold: read: %v (got %q)\nstderr:\n%s", err, line, h.app.stderr)
	}
	var w struct {
		whoami
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &w); err != nil || w.Error != "" {
		t.Fatalf("node /hold answered %s (%v)", line, err)
	}
	return w.whoami
}

// release lets the request save its session and returns what it saved,
// once the response has ended (express-session ends it after the save).
func (h *heldRequest) release(t *testing.T) whoami {
	t.Helper()
	h.app.call(t, http.MethodPost, "/release?token="+url.QueryEscape(h.token), "", nil)
	saved := h.line(t)
	if rest, err := io.ReadAll(h.body); err != nil || len(rest) != 0 {
		t.Fatalf("node /hold: after the answer: %q, %v", rest, err)
	}
	return saved
}

// A Node request in flight when Go ends its session (logout,
// Regenerate, Revoke, RevokeOthers), or when Node's own logout does, saves
// after the end: connect-pg-simple's upsert would insert the session
// again, and the old cookie would log in on both sides. With resave false
// the request changes the session (an unchanged one is only touched, an
// UPDATE); with resave true it only reads it, and is saved all the same.
func TestExpressLogoutFinalAgainstNodeInFlight(t *testing.T) {
	t.Parallel()
	for _, resave := range []bool{false, true} {
		t.Run(fmt.Sprintf("resave=%v", resave), func(t *testing.T) {
			t.Parallel()
			schema := expressSchema(t)
			node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}, resave: resave})
			zone := nodeTimeZone(t)
			eachDriverInTurn(t, func(t *testing.T, drv string, db *sql.DB) {
				st := newExpressStore(t, db, schema, []string{newSecret})
				ctx := context.Background()
				ends := []struct {
					name string
					// end ends the session of cookie and returns a cookie
					// that must still log user in, if any.
					end func(t *testing.T, cookie, user string) string
				}{
					{"Go logout", func(t *testing.T, cookie, _ string) string {
						r, s := goGet(t, st, cookie)
						s.Options.MaxAge = -1
						goSave(t, st, r, s)
						return ""
					}},
					{"Go regenerate", func(t *testing.T, cookie, _ string) string {
						r, s := goGet(t, st, cookie)
						w := httptest.NewRecorder()
						if err := st.Regenerate(r, w, s); err != nil {
							t.Fatalf("Regenerate: %v", err)
						}
						return responseCookie(w, expressCookieName).Value
					}},
					{"Go revoke", func(t *testing.T, _, user string) string {
						if n, err := st.Revoke(ctx, "user", user); err != nil || n != 1 {
							t.Fatalf("Revoke: %d, %v", n, err)
						}
						return ""
					}},
					{"Go revoke others", func(t *testing.T, _, user string) string {
						keep := goLogin(t, st, user)
						_, s := goGet(t, st, keep)
						if n, err := st.RevokeOthers(ctx, "user", user, s); err != nil || n != 1 {
							t.Fatalf("RevokeOthers: %d, %v", n, err)
						}
						return keep
					}},
					{"Node logout", func(t *testing.T, cookie, _ string) string {
						node.call(t, http.MethodPost, "/logout", cookie, nil)
						return ""
					}},
				}
				for i, e := range ends {
					t.Run(e.name, func(t *testing.T) {
						user := fmt.Sprintf("%s-%d-%s", drv, i, map[bool]string{false: "a", true: "b"}[resave])
						cookie, sid := node.login(t, user)
						held := node.hold(t, cookie, !resave)
						if held.loaded.User != user {
							t.Fatalf("the held request loaded %v, want %s", held.loaded.User, user)
						}
						survivor := e.end(t, cookie, user)
						if saved := held.release(t); saved.User != user {
							t.Errorf("the held request saved %v, want %s", saved.User, user)
						}

						if _, ok := readRow(t, db, schema, zone, sid); ok {
							t.Errorf("the ended session's row is back")
						}
						if w := node.whoami(t, cookie); w.User != nil || w.SID == sid {
							t.Errorf("Node logs the old cookie in again: %+v", w)
						}
						if _, s := goGet(t, st, cookie); !s.IsNew || len(s.Values) != 0 {
							t.Errorf("Go logs the old cookie in again: %v", s.Values)
						}
						if survivor != "" {
							if w := node.whoami(t, survivor); w.User != user {
								t.Errorf("Node with the session that lives on: %+v", w)
							}
							if _, s := goGet(t, st, survivor); s.IsNew || s.Values["user"] != user {
								t.Errorf("Go with the session that lives on: %v", s.Values)
							}
						}
					})
				}
			})
		})
	}
}

// The other way round: a Go request in flight when Node logs the session
// out cannot bring it back either, because Go's writes of a loaded session
// (the update in Save, the delete-then-insert of Regenerate) only act on a
// row that is there and alive.
func TestExpressGoInFlightAgainstNodeLogout(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, drv string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie, sid := node.login(t, "in-flight-"+drv)
		saveReq, saving := goGet(t, st, cookie)
		regenReq, regenerating := goGet(t, st, cookie)
		if saving.IsNew || regenerating.IsNew {
			t.Fatal("Go did not load Node's session")
		}
		node.call(t, http.MethodPost, "/logout", cookie, nil)

		saving.Values["cart"] = "book"
		if err := st.Save(saveReq, httptest.NewRecorder(), saving); !errors.Is(err, pgstore.ErrSessionNotFound) {
			t.Errorf("Save after Node's logout: %v, want ErrSessionNotFound", err)
		}
		w := httptest.NewRecorder()
		if err := st.Regenerate(regenReq, w, regenerating); !errors.Is(err, pgstore.ErrSessionNotFound) {
			t.Errorf("Regenerate after Node's logout: %v, want ErrSessionNotFound", err)
		}
		if c := responseCookie(w, expressCookieName); c != nil {
			t.Errorf("Regenerate after Node's logout set a cookie: %v", c)
		}
		if _, ok := readRow(t, db, schema, zone, sid); ok {
			t.Error("the session Node logged out is back")
		}
		if n := rowCount(t, db, schema, pgstore.DefaultTableName); n != 0 {
			t.Errorf("%d rows after Node's logout, want 0", n)
		}
		if w := node.whoami(t, cookie); w.User != nil {
			t.Errorf("Node logs the old cookie in again: %+v", w)
		}
	})
}

// A role that does not own the table (as when connect-pg-simple made it)
// cannot install the tombstones and is told what to do; once the owner
// has, it works, and saves and deletes by a role with no grant on the
// tombstone table (Node's, say) go through the SECURITY DEFINER function.
func TestTombstonesAndRoles(t *testing.T) {
	db := sharedDB(t, "postgres")
	dsn, _ := pgtest.DSN()
	schema := pgtest.Schema(t, db)
	role := loginRole(t, db, "pgstore_app_")
	newTestStore(t, db, pgstore.Config{SchemaName: schema}) // the table, owned by the test's role
	table := qualified(schema, pgstore.DefaultTableName)
	for _, stmt := range []string{
		`GRANT USAGE, CREATE ON SCHEMA "` + schema + `" TO "` + role + `"`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + table + ` TO "` + role + `"`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	appDB := pgtest.OpenDSN(t, "postgres", withUser(dsn, role))
	cfg := pgstore.Config{SchemaName: schema, ExpressSecrets: []string{newSecret}, PruneInterval: -1}
	_, err := pgstore.New(appDB, cfg)
	if err == nil || !strings.Contains(err.Error(), "run tombstones.sql as the table's owner") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("New by a role that does not own the table: %v", err)
	}

	newExpressTestStore(t, db, schema, pgstore.DefaultTableName) // the owner installs them
	newTestStore(t, appDB, cfg)
	nodeSave(t, appDB, table, "r")
	if _, err := appDB.Exec(`DELETE FROM ` + table + ` WHERE sid = 'r'`); err != nil {
		t.Fatalf("delete by a role without grants on the tombstones: %v", err)
	}
	nodeSave(t, appDB, table, "r")
	if sessionExists(t, db, table, "r") {
		t.Error("a tombstoned session came back")
	}
}

// upsertLikeNode is the statement connect-pg-simple 10.0.0 saves a session
// with: an insert that updates the row when the sid is there.
func upsertLikeNode(table string) string {
	return `INSERT INTO ` + table + ` (sess, expire, sid) SELECT $1, to_timestamp($2), $3
		ON CONFLICT (sid) DO UPDATE SET sess = $1, expire = to_timestamp($2) RETURNING sid`
}

// nodeSave saves sid as connect-pg-simple would, alive for a day.
func nodeSave(t *testing.T, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, table, sid string) {
	t.Helper()
	if _, err := q.ExecContext(context.Background(), upsertLikeNode(table), `{"cookie":{},"user":"u"}`,
		time.Now().Add(24*time.Hour).Unix(), sid); err != nil {
		t.Fatalf("save like Node: %v", err)
	}
}

func sessionExists(t *testing.T, db *sql.DB, table, sid string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM `+table+` WHERE sid = $1)`, sid).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func newExpressTestStore(t *testing.T, db *sql.DB, schema, table string) *pgstore.Store {
	t.Helper()
	return newTestStore(t, db, pgstore.Config{SchemaName: schema, TableName: table, ExpressSecrets: []string{newSecret}})
}

// A Node save that reaches the unique index while a delete of the same
// sid is still uncommitted waits for it, then inserts: the tombstone must
// be checked after that wait, not before the insert (a BEFORE INSERT
// trigger would have looked while the delete's tombstone was invisible).
func TestTombstoneCheckedAfterConcurrentDelete(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		schema := pgtest.Schema(t, db)
		newExpressTestStore(t, db, schema, pgstore.DefaultTableName)
		table := qualified(schema, pgstore.DefaultTableName)
		ctx := ctxTimeout(t)
		nodeSave(t, db, table, "s1")

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE sid = 's1'`); err != nil {
			t.Fatal(err)
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var pid int
		if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		saved := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(ctx, upsertLikeNode(table), `{"cookie":{}}`, time.Now().Add(time.Hour).Unix(), "s1")
			saved <- err
		}()
		// Wait (bounded by ctx) until the save waits for the delete.
		for blocked := false; !blocked; {
			select {
			case err := <-saved:
				t.Fatalf("the save did not wait for the delete: %v", err)
			default:
			}
			if err := db.QueryRowContext(ctx, `SELECT cardinality(pg_blocking_pids($1)) > 0`, pid).Scan(&blocked); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-saved; err != nil {
			t.Fatalf("the save: %v", err)
		}
		if sessionExists(t, db, table, "s1") {
			t.Error("a save that waited for the delete brought the session back")
		}
	})
}

// Tombstones are written for live sessions only, last an hour, are then
// ignored, and are pruned with expired sessions.
func TestTombstoneLifetime(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		schema := pgtest.Schema(t, db)
		st := newExpressTestStore(t, db, schema, pgstore.DefaultTableName)
		table := qualified(schema, pgstore.DefaultTableName)
		tombs := qualified(schema, pgstore.DefaultTableName+"_tombstones")
		ctx := ctxTimeout(t)
		nodeSave(t, db, table, "live")
		nodeSave(t, db, table, "dead")
		if _, err := db.Exec(`UPDATE ` + table + ` SET expire = expire - interval '2 days' WHERE sid = 'dead'`); err != nil {
			t.Fatal(err)
		}
		if n, err := st.Prune(ctx); err != nil || n != 1 {
			t.Fatalf("Prune: %d, %v", n, err)
		}
		if _, err := db.Exec(`DELETE FROM ` + table + ` WHERE sid = 'live'`); err != nil {
			t.Fatal(err)
		}
		var sids string
		var hour bool
		if err := db.QueryRow(`SELECT string_agg(sid, ','), bool_and(expire BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes') FROM `+tombs).Scan(&sids, &hour); err != nil {
			t.Fatal(err)
		}
		if sids != "live" || !hour {
			t.Fatalf("tombstones %q (an hour: %v), want live's alone, for an hour", sids, hour)
		}
		nodeSave(t, db, table, "live")
		if sessionExists(t, db, table, "live") {
			t.Fatal("a tombstoned session came back")
		}
		nodeSave(t, db, table, "dead")
		if !sessionExists(t, db, table, "dead") {
			t.Fatal("a pruned session has a tombstone")
		}

		if _, err := db.Exec(`UPDATE ` + tombs + ` SET expire = now() - interval '1 second'`); err != nil {
			t.Fatal(err)
		}
		nodeSave(t, db, table, "live")
		if !sessionExists(t, db, table, "live") {
			t.Error("an expired tombstone still refuses the session")
		}
		if _, err := st.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		if n := rowCount(t, db, schema, pgstore.DefaultTableName+"_tombstones"); n != 0 {
			t.Errorf("%d tombstones left after Prune, want 0", n)
		}
	})
}

// Native mode installs nothing: no other writer re-inserts its sessions.
// A store opened in native mode on a table with tombstones (as the
// pgstore command opens tables) prunes the expired ones, so that cron
// pruning through it keeps the tombstone table small.
func TestNativeStorePrunesTombstones(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	newExpressTestStore(t, db, schema, pgstore.DefaultTableName)
	table := qualified(schema, pgstore.DefaultTableName)
	tombs := qualified(schema, pgstore.DefaultTableName+"_tombstones")
	nodeSave(t, db, table, "gone")
	if _, err := db.Exec(`DELETE FROM ` + table + ` WHERE sid = 'gone'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE ` + tombs + ` SET expire = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	native := newTestStore(t, db, pgstore.Config{SchemaName: schema})
	if _, err := native.Prune(ctxTimeout(t)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + tombs).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tombstones after a native store's Prune (%v), want the expired one gone", n, err)
	}
}

func TestNativeModeHasNoTombstones(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db)
	newTestStore(t, db, pgstore.Config{SchemaName: schema})
	var triggers int
	var tombs bool
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1)), to_regclass($2) IS NOT NULL`,
		qualified(schema, pgstore.DefaultTableName), qualified(schema, pgstore.DefaultTableName+"_tombstones")).Scan(&triggers, &tombs); err != nil {
		t.Fatal(err)
	}
	if triggers != 0 || tombs {
		t.Errorf("native mode: %d triggers, tombstone table %v", triggers, tombs)
	}
}

// Express stores starting at once create the tombstones once, without
// errors.
func TestConcurrentTombstoneCreation(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		for round := 0; round < 3; round++ {
			schema := pgtest.Schema(t, db)
			err := newAtOnce(8, func(int) (*pgstore.Store, error) {
				return pgstore.New(db, pgstore.Config{ExpressSecrets: []string{newSecret}, SchemaName: schema, PruneInterval: -1})
			})
			if err != nil {
				t.Fatalf("round %d: concurrent New: %v", round, err)
			}
		}
	})
}

// Strange and long names are quoted, and long ones get tombstone tables
// of their own.
func TestTombstoneNames(t *testing.T) {
	db := sharedDB(t, "postgres")
	schema := pgtest.Schema(t, db) + ` we"ird'; schema`
	if _, err := db.Exec(`CREATE SCHEMA ` + qualified("", schema)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec(`DROP SCHEMA ` + qualified("", schema) + ` CASCADE`) })
	long := strings.Repeat("s", 62)
	for _, name := range []string{`user "sessions"'; DROP TABLE x; --\`, long + "1", long + "2", strings.Repeat("é", 31)} {
		newExpressTestStore(t, db, schema, name)
		table := qualified(schema, name)
		nodeSave(t, db, table, "x")
		if _, err := db.Exec(`DELETE FROM ` + table); err != nil {
			t.Fatal(err)
		}
		nodeSave(t, db, table, "x")
		if sessionExists(t, db, table, "x") {
			t.Errorf("table %q: a tombstoned session came back", name)
		}
		newExpressTestStore(t, db, schema, name) // finds them
	}
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE '%tombstones'`, schema).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 4 {
		t.Errorf("%d tombstone tables for 4 session tables", tables)
	}
}

// With SkipCreateTable, New refuses a table without tombstones and says
// what to run; doing what it says (twice: the file is idempotent) makes
// what New would have made.
func TestTombstonesSkipCreateTable(t *testing.T) {
	db := sharedDB(t, "postgres")
	byHand := pgtest.Schema(t, db)
	newTestStore(t, db, pgstore.Config{SchemaName: byHand}) // the table alone
	cfg := pgstore.Config{SchemaName: byHand, ExpressSecrets: []string{newSecret}, SkipCreateTable: true, PruneInterval: -1}
	_, err := pgstore.New(db, cfg)
	if err == nil {
		t.Fatal("New with SkipCreateTable accepted a table without tombstones")
	}
	m := regexp.MustCompile(`run tombstones.sql with "public"."user_sessions_tombstones" replaced by (.+), "public"."user_sessions" by (.+) and 'UTC' by (.+) \(`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("New's error does not say what to run: %v", err)
	}
	ddl, err := os.ReadFile("tombstones.sql")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer(`"public"."user_sessions_tombstones"`, m[1], `"public"."user_sessions"`, m[2], `'UTC'`, m[3]).Replace(string(ddl))
	for i := 0; i < 2; i++ {
		if _, err := db.Exec(script); err != nil {
			t.Fatalf("tombstones.sql, run %d: %v", i+1, err)
		}
	}
	st, err := pgstore.New(db, cfg)
	if err != nil {
		t.Fatalf("New after tombstones.sql: %v", err)
	}
	st.Close()

	// A missing trigger counts as missing tombstones, and running the
	// file again puts it back.
	for _, trigger := range []string{"pgstore_tombstone_record", "pgstore_tombstone_check"} {
		if _, err := db.Exec(`DROP TRIGGER ` + trigger + ` ON ` + qualified(byHand, pgstore.DefaultTableName)); err != nil {
			t.Fatal(err)
		}
		if st, err := pgstore.New(db, cfg); err == nil {
			st.Close()
			t.Errorf("New with SkipCreateTable accepted a table without trigger %s", trigger)
		}
		if _, err := db.Exec(script); err != nil {
			t.Fatalf("tombstones.sql again: %v", err)
		}
	}

	byNew := pgtest.Schema(t, db)
	newExpressTestStore(t, db, byNew, pgstore.DefaultTableName)
	if got, want := describeTombstones(t, db, byNew), describeTombstones(t, db, byHand); got != want {
		t.Errorf("New made\n%s\ntombstones.sql made\n%s", got, want)
	}
}

// describeTombstones lists the tombstone objects of schema's default
// table, with the schema's name taken out.
func describeTombstones(t *testing.T, db *sql.DB, schema string) string {
	t.Helper()
	var desc string
	err := db.QueryRow(`SELECT
		(SELECT string_agg(pg_get_triggerdef(oid), E'\n' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = to_regclass($1)) || E'\n' ||
		pg_get_functiondef(to_regprocedure($2 || '()')) || E'\n' ||
		(SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass($2) AND attnum > 0)`,
		qualified(schema, pgstore.DefaultTableName), qualified(schema, pgstore.DefaultTableName+"_tombstones")).Scan(&desc)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(desc, schema, "SCHEMA")
}
