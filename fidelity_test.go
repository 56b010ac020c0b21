package pgstore_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

// Value fidelity between Node and Go on one table: what either side
// stores, the other keeps. Values Go did not change come back with the JSON
// text Node wrote, byte for byte.

// nodeCorpus holds JSON texts Node stores that Go cannot write the same
// way, or at all, by re-encoding: NUL, a lone surrogate, deep nesting, a
// session over MaxLength, __proto__, -0, an integer past 2^53, 1e308.
func nodeCorpus() map[string]string {
	return map[string]string{
		"nul":       `"a\u0000b"`,
		"surrogate": `"x\ud800y"`,
		"deep":      strings.Repeat("[", 1000) + "1" + strings.Repeat("]", 1000), // Node's own stack ends nesting a few thousand deep
		"big":       `"` + strings.Repeat("é", 1<<19) + `"`,                      // 1 MiB of UTF-8
		"proto":     `{"__proto__":{"x":1}}`,
		"negzero":   `-0`,
		"bigint":    `9007199254740993`,
		"huge":      `1e308`,
	}
}

// rawMembers returns the members of the row's sess as stored.
func rawMembers(t *testing.T, db *sql.DB, schema, sid string) map[string]json.RawMessage {
	t.Helper()
	var raw []byte
	if err := db.QueryRow(`SELECT sess::text FROM `+qualified(schema, pgstore.DefaultTableName)+` WHERE sid = $1`,
		sid).Scan(&raw); err != nil {
		t.Fatalf("read sess: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("sess: %v", err)
	}
	return m
}

// Every value Node writes, Go can save back: unchanged (no ErrEncode, no
// ErrTooLarge for a session past MaxLength), and beside a change of its
// own to another key. Either way the values Go did not touch keep Node's
// text byte for byte, and Node reads them back as it wrote them.
func TestExpressNodeValuesSurviveGoSaves(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie, sid := node.login(t, "zoe")
		corpus := nodeCorpus()
		for k, v := range corpus {
			node.setJSON(t, cookie, k, v)
		}
		nodeBefore := node.whoami(t, cookie).Session
		before := rawMembers(t, db, schema, sid)

		// An unchanged save: nothing may fail, nothing may change.
		r, s := goGet(t, st, cookie)
		if s.IsNew {
			t.Fatal("Go did not load Node's session")
		}
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatalf("Go's save of Node's unchanged session: %v", err)
		}
		// A change to another key, on a fresh load; it does not grow the
		// session, which MaxLength would refuse.
		r, s = goGet(t, st, cookie)
		s.Values["user"] = "ann"
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatalf("Go's save of a change beside Node's values: %v", err)
		}

		after := rawMembers(t, db, schema, sid)
		for k := range corpus {
			if !bytes.Equal(before[k], after[k]) {
				t.Errorf("%s: Node wrote %.80s, after Go's save %.80s", k, before[k], after[k])
			}
		}
		if string(after["user"]) != `"ann"` {
			t.Errorf("Go's own change: %s", after["user"])
		}
		nodeAfter := node.whoami(t, cookie).Session
		for k := range corpus {
			if !reflect.DeepEqual(nodeBefore[k], nodeAfter[k]) {
				t.Errorf("%s: Node read %.80v before Go's save, %.80v after", k, nodeBefore[k], nodeAfter[k])
			}
		}
	})
}

// Growth past MaxLength is still refused, on Node's sessions as on Go's.
func TestExpressMaxLengthRefusesGrowthOnly(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie, sid := node.login(t, "yann")
		node.setJSON(t, cookie, "big", `"`+strings.Repeat("a", 2*pgstore.DefaultMaxLength)+`"`)
		before := rawMembers(t, db, schema, sid)

		r, s := goGet(t, st, cookie)
		s.Values["big"] = s.Values["big"].(string) + "more"
		if err := st.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrTooLarge) {
			t.Fatalf("growing a session past MaxLength: %v, want ErrTooLarge", err)
		}
		if after := rawMembers(t, db, schema, sid); !bytes.Equal(before["big"], after["big"]) {
			t.Error("the refused save changed the row")
		}
		r, s = goGet(t, st, cookie)
		s.Values["big"] = "small again"
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatalf("shrinking it: %v", err)
		}
	})
}

// What Go stores survives Node's rewrite of the session (Node re-encodes
// every value with JSON.stringify) as far as JSON numbers allow; the
// documented drift (docs/express.md) is exactly this.
func TestExpressGoValuesAfterNodeRewrite(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		st := newExpressStore(t, db, schema, []string{newSecret})
		cookie := goLogin(t, st, "xena")
		kept := map[string]any{
			"nul":   "a\x00b",
			"deep":  nested(1000),
			"proto": map[string]any{"__proto__": map[string]any{"x": 1}},
			"float": 2.5,
			"int":   1 << 53,
		}
		drift := map[string][2]any{ // what Go stores → what Go reads after Node's rewrite
			"whole float": {2.0, 2},
			"negative 0":  {math.Copysign(0, -1), 0},
			"2^53+1":      {int64(1<<53 + 1), 1 << 53},
			"MaxInt64":    {int64(math.MaxInt64), float64(math.MaxInt64)},
		}
		r, s := goGet(t, st, cookie)
		for k, v := range kept {
			s.Values[k] = v
		}
		for k, v := range drift {
			s.Values[k] = v[0]
		}
		goSave(t, st, r, s)

		node.set(t, cookie, "node", "touched") // Node rewrites the whole session

		_, s = goGet(t, st, cookie)
		if s.Values["node"] != "touched" {
			t.Fatalf("Node's write did not land: %v", s.Values["node"])
		}
		for k, v := range kept {
			want := v
			if k == "deep" {
				want = nested(1000)
			}
			if !reflect.DeepEqual(s.Values[k], want) {
				t.Errorf("%s: Go stored %.60v, read %.60v after Node's rewrite", k, v, s.Values[k])
			}
		}
		for k, v := range drift {
			if !reflect.DeepEqual(s.Values[k], v[1]) {
				t.Errorf("%s: Go stored %v (%T), read %#v after Node's rewrite, documented %#v (%T)", k, v[0], v[0], s.Values[k], v[1], v[1])
			}
		}
	})
}

// Node's cookie fields survive Go's writes and Go honours them: a lifetime
// in milliseconds that is not whole seconds stays as Node set it until Go
// changes the lifetime, partitioned and priority stay in the row, and both
// sides' Set-Cookie carry Partitioned and Priority.
func TestExpressCookieFieldsKept(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	const lifetimeMS = 3600500 // an hour and half a second
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret},
		maxAgeMS: strconv.Itoa(lifetimeMS), partitioned: true, priority: "high"})
	zone := nodeTimeZone(t)
	eachDriverInTurn(t, func(t *testing.T, _ string, db *sql.DB) {
		clk := newClock(t, db)
		st := newExpressStore(t, db, schema, []string{newSecret}, clk.hooks())
		cookie, sid := node.login(t, "wes")
		checkRow := func(when string) {
			t.Helper()
			row, _ := readRow(t, db, schema, zone, sid)
			if row.cookie["originalMaxAge"] != float64(lifetimeMS) || row.cookie["partitioned"] != true ||
				row.cookie["priority"] != "high" {
				t.Errorf("%s: the row's cookie member is %v", when, row.cookie)
			}
		}
		checkRow("Node's login")

		r, s := goGet(t, st, cookie)
		if s.Options.MaxAge != 3601 || !s.Options.Partitioned {
			t.Errorf("Go's options for Node's session: MaxAge %d, Partitioned %v", s.Options.MaxAge, s.Options.Partitioned)
		}
		s.Values["theme"] = "dark"
		goSave(t, st, r, s)
		checkRow("Go's change")

		clk.Advance(pgstore.DefaultTouchInterval + 5*time.Second)
		r, s = goGet(t, st, cookie)
		w := httptest.NewRecorder()
		if err := st.Save(r, w, s); err != nil {
			t.Fatal(err)
		}
		setCookie := w.Header().Get("Set-Cookie")
		if !strings.Contains(setCookie, "; Partitioned") || !strings.Contains(setCookie, "; Priority=High") {
			t.Errorf("Go's Set-Cookie on a touch: %s", setCookie)
		}
		checkRow("Go's touch")

		req, _ := http.NewRequest(http.MethodPost, node.base+"/incr", nil)
		req.Header.Set("Cookie", expressCookieName+"="+cookie)
		resp, err := node.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// express-session sends the headers, saves, and only then ends the
		// body: read it all, so that Node's save is done before Go's next.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if setCookie := resp.Header.Get("Set-Cookie"); resp.StatusCode != http.StatusOK ||
			!strings.Contains(setCookie, "; Partitioned") || !strings.Contains(setCookie, "; Priority=High") {
			t.Errorf("Node's answer after Go's writes: %d, Set-Cookie %s", resp.StatusCode, setCookie)
		}
		checkRow("Node's write after Go's")

		// A lifetime Go changes is Go's, in whole seconds.
		r, s = goGet(t, st, cookie)
		s.Options.MaxAge = 7200
		goSave(t, st, r, s)
		if row, _ := readRow(t, db, schema, zone, sid); row.cookie["originalMaxAge"] != float64(7200000) {
			t.Errorf("after Go set MaxAge 7200: originalMaxAge %v", row.cookie["originalMaxAge"])
		}
	})
}

// A Go request that changes nothing must not write the row back: a Node
// request's save made meanwhile would be lost. Rows Node writes list the
// cookie's fields and the values in Node's order, not Go's.
func TestExpressUnchangedSaveDoesNotRewriteNodeRow(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newExpressStore(t, db, "", []string{"s3cret"})
	cookie := goLogin(t, st, "alice")
	sid, _ := splitCookie(t, cookie)
	schema := st.SchemaName()
	tbl := qualified(schema, pgstore.DefaultTableName)
	var raw string
	if err := db.QueryRow(`SELECT sess::text FROM `+tbl+` WHERE sid=$1`, sid).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("Go row:   %s", raw)
	// What connect-pg-simple stores after express-session saved the session
	// (req.session.zeta = 1 added by a Node route): insertion order.
	nodeRaw := strings.Replace(raw, `"user":"alice"`, `"user":"alice","zeta":1`, 1)
	nodeRaw = strings.Replace(nodeRaw, `"user":"alice","zeta":1`, `"zeta":1,"user":"alice"`, 1)
	if _, err := db.Exec(`UPDATE `+tbl+` SET sess=$2 WHERE sid=$1`, sid, nodeRaw); err != nil {
		t.Fatal(err)
	}
	t.Logf("Node row: %s", nodeRaw)

	r, s := goGet(t, st, cookie) // Go request loads the session...
	// ...a concurrent Node request saves a change...
	changed := strings.Replace(nodeRaw, `"user":"alice"`, `"user":"alice","cart":[1,2]`, 1)
	if _, err := db.Exec(`UPDATE `+tbl+` SET sess=$2 WHERE sid=$1`, sid, changed); err != nil {
		t.Fatal(err)
	}
	// ...and the Go request saves without having changed anything.
	w := httptest.NewRecorder()
	if err := st.Save(r, w, s); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT sess::text FROM `+tbl+` WHERE sid=$1`, sid).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw, `"cart"`) {
		t.Fatalf("an unchanged Go Save rewrote the row and lost Node's concurrent change:\n%s", raw)
	}
}

func expressStoreMax(t *testing.T, max int) *pgstore.Store {
	db := sharedDB(t, "postgres")
	opts := pgstore.DefaultOptions()
	opts.Secure = false
	return newTestStore(t, db, pgstore.Config{ExpressSecrets: []string{"s3cret"}, Options: opts,
		TimeZone: nodeTimeZone(t), MaxLength: max})
}

func setSess(t *testing.T, st *pgstore.Store, sid, from, to string) string {
	db := sharedDB(t, "postgres")
	tbl := qualified(st.SchemaName(), pgstore.DefaultTableName)
	var raw string
	if err := db.QueryRow(`SELECT sess::text FROM `+tbl+` WHERE sid=$1`, sid).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if from != "" {
		if !strings.Contains(raw, from) {
			t.Fatalf("%s not in %s", from, raw)
		}
		raw = strings.Replace(raw, from, to, 1)
		if _, err := db.Exec(`UPDATE `+tbl+` SET sess=$2 WHERE sid=$1`, sid, raw); err != nil {
			t.Fatal(err)
		}
	}
	return raw
}

// MaxLength refuses growth only: a session already over it that shrinks
// must be saved. Keys whose JSON text has escapes are counted decoded.
func TestExpressMaxLengthLetsEscapedKeysShrink(t *testing.T) {
	st := expressStoreMax(t, 2000)
	cookie := goLogin(t, st, "alice")
	sid, _ := splitCookie(t, cookie)
	// Node's session: a big value, and keys holding characters JSON escapes.
	var extra strings.Builder
	for i := 0; i < 10; i++ {
		extra.WriteString(`,"tab\u0001` + string(rune('a'+i)) + `":1`)
	}
	setSess(t, st, sid, `"user":"alice"`, `"big":"`+strings.Repeat("x", 3000)+`"`+extra.String()+`,"user":"alice"`)

	r, s := goGet(t, st, cookie)
	s.Values["big"] = strings.Repeat("x", 2999) // one byte smaller
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatalf("shrinking a session over MaxLength by one byte: %v", err)
	}
}

// A value Node stored under a key with a lone surrogate survives a Go
// save that did not touch it.
func TestExpressLoneSurrogateKeysKept(t *testing.T) {
	st := expressStoreMax(t, 0)
	cookie := goLogin(t, st, "alice")
	sid, _ := splitCookie(t, cookie)
	setSess(t, st, sid, `"user":"alice"`, `"user":"alice","\ud800":"hi","\udc00":"there"`)
	r, s := goGet(t, st, cookie)
	s.Values["user"] = "bob"
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	raw := setSess(t, st, sid, "", "")
	if !strings.Contains(raw, `"\ud800":"hi"`) || !strings.Contains(raw, `"\udc00":"there"`) {
		t.Fatalf("Node's members under lone-surrogate keys changed by a save that did not touch them:\n%s", raw)
	}
}

// Same as TestReviewUnchangedSaveClobbersNodeWrite, with the real Express
// app writing the row: Node logs in and sets "cart"; a Go request loads the
// session, Node sets "cart" again meanwhile, and the Go request saves
// without having changed anything.
func TestExpressUnchangedGoSaveKeepsConcurrentNodeChange(t *testing.T) {
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	db := sharedDB(t, "postgres")
	st := newExpressStore(t, db, schema, []string{newSecret})
	cookie, sid := node.login(t, "yann")
	node.setJSON(t, cookie, "cart", `[1]`)
	r, s := goGet(t, st, cookie)
	// A first unchanged Go save may add _pgstore's created to Node's row.
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatal(err)
	}
	node.setJSON(t, cookie, "cart", `[1,2]`)
	node.setJSON(t, cookie, "age", `30`) // a new key: Node appends it, after "user"
	before := rawMembers(t, db, schema, sid)
	var raw string
	db.QueryRow(`SELECT sess::text FROM `+qualified(schema, pgstore.DefaultTableName)+` WHERE sid=$1`, sid).Scan(&raw)
	t.Logf("row written by Node: cart=%s\n%s", before["cart"], raw)

	r, s = goGet(t, st, cookie)                                   // Go request loads the session
	node.setJSON(t, cookie, "cart", `[1,2,3]`)                    // concurrent Node request
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil { // Go: no change
		t.Fatal(err)
	}
	if after := rawMembers(t, db, schema, sid); string(after["cart"]) != `[1,2,3]` {
		t.Fatalf("an unchanged Go Save wrote the session back: Node's cart [1,2,3] is now %s", after["cart"])
	}
}
