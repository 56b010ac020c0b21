package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

const cookieName = "session"

var (
	hashKey  = bytes.Repeat([]byte{0x11}, 32)
	blockKey = bytes.Repeat([]byte{0x22}, 32)
	// oldHashKey signed cookies before a key rotation; it is passed as
	// text, the way many apps made keys: []byte("...").
	oldHashKey = []byte("an old hash key of at least 32 bytes, as text")
	otherKey   = bytes.Repeat([]byte{0x33}, 32)
)

// cartItem is registered with gob only in the test process (in
// TestMigrate), never in the program's, as an application's own type is.
type cartItem struct {
	SKU string
	Qty int
}

// antonDDL is the table antonlindstrom/pgstore creates.
const antonDDL = `CREATE TABLE IF NOT EXISTS http_sessions (
	id BIGSERIAL PRIMARY KEY,
	key BYTEA,
	data BYTEA,
	created_on TIMESTAMPTZ DEFAULT NOW(),
	modified_on TIMESTAMPTZ,
	expires_on TIMESTAMPTZ);
CREATE INDEX IF NOT EXISTS http_sessions_expiry_idx ON http_sessions (expires_on);
CREATE INDEX IF NOT EXISTS http_sessions_key_idx ON http_sessions (key);`

// antonStore writes rows and cookies exactly as antonlindstrom/pgstore
// does: the ID is base32 (no padding) of 32 random bytes; data is
// securecookie.EncodeMulti(name, session.Values, codecs...) with gob; the
// cookie is securecookie.EncodeMulti(name, session.ID, codecs...); lib/pq
// binds both as text into the bytea columns.
type antonStore struct {
	db     *sql.DB // search_path set to the test's schema, as the old app's table was unqualified
	codecs []securecookie.Codec
}

func newAntonStore(db *sql.DB, keyPairs ...[]byte) *antonStore {
	codecs := securecookie.CodecsFromPairs(keyPairs...)
	for _, c := range codecs {
		c.(*securecookie.SecureCookie).MaxAge(86400 * 30) // its MaxAge(Options.MaxAge)
	}
	return &antonStore{db: db, codecs: codecs}
}

func newAntonID() string {
	return strings.TrimRight(base32.StdEncoding.EncodeToString(securecookie.GenerateRandomKey(32)), "=")
}

// save stores values as a new session and returns the cookie the old store
// would have set.
func (a *antonStore) save(t *testing.T, values map[any]any, createdOn, expiresOn time.Time) *http.Cookie {
	t.Helper()
	id := newAntonID()
	data, err := securecookie.EncodeMulti(cookieName, values, a.codecs...)
	if err != nil {
		t.Fatalf("encode values: %v", err)
	}
	a.insert(t, id, data, createdOn, expiresOn)
	cookie, err := securecookie.EncodeMulti(cookieName, id, a.codecs...)
	if err != nil {
		t.Fatalf("encode cookie: %v", err)
	}
	return &http.Cookie{Name: cookieName, Value: cookie}
}

func (a *antonStore) insert(t *testing.T, id, data string, createdOn, expiresOn time.Time) {
	t.Helper()
	_, err := a.db.Exec(`INSERT INTO http_sessions (key, data, created_on, modified_on, expires_on)
           VALUES ($1, $2, $3, $4, $5)`, id, data, createdOn, time.Now(), expiresOn)
	if err != nil {
		t.Fatalf("insert old row: %v", err)
	}
}

// encodeAt is securecookie's Encode with gob and a timestamp of our
// choosing, which securecookie's API does not offer: it makes rows and
// cookies that were last written long ago.
func encodeAt(t *testing.T, name string, value any, hashKey, blockKey []byte, at time.Time) string {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(value); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if blockKey != nil {
		block, err := aes.NewCipher(blockKey)
		if err != nil {
			t.Fatal(err)
		}
		iv := make([]byte, block.BlockSize())
		if _, err := rand.Read(iv); err != nil {
			t.Fatal(err)
		}
		cipher.NewCTR(block, iv).XORKeyStream(b, b)
		b = append(iv, b...)
	}
	payload := fmt.Sprintf("%d|%s", at.Unix(), base64.URLEncoding.EncodeToString(b))
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(name + "|" + payload))
	return base64.URLEncoding.EncodeToString(append([]byte(payload+"|"), mac.Sum(nil)...))
}

// runMigrate runs pgstore migrate in a process of its own.
func runMigrate(t *testing.T, args ...string) (out string, code int) {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"migrate"}, args...)...)
	return stdout + stderr, code
}

// load returns the session a request with cookie c gets from st.
func load(t *testing.T, st *pgstore.Store, c *http.Cookie) (*http.Request, *sessions.Session) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil)
	r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	s, err := st.Get(r, cookieName)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return r, s
}

func newStore(t *testing.T, db *sql.DB, cfg pgstore.Config) *pgstore.Store {
	t.Helper()
	// The keys the old store had, in the same order: the new pair first.
	cfg.KeyPairs = [][]byte{hashKey, blockKey, oldHashKey, nil}
	cfg.PruneInterval = -1
	st, err := pgstore.New(db, cfg)
	if err != nil {
		t.Fatalf("pgstore.New: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestMigrate(t *testing.T) {
	dsn := pgtest.Require(t)
	gob.Register(cartItem{})
	db := pgtest.OpenDSN(t, "postgres", dsn)
	schema := pgtest.Schema(t, db)
	oldDB := pgtest.OpenDSN(t, "postgres", pgtest.WithParams(dsn, map[string]string{"options": "-c search_path=" + schema}))
	if _, err := oldDB.Exec(antonDDL); err != nil {
		t.Fatal(err)
	}
	table := func(name string) string { return qualified(schema, name) }

	// The old app: keys rotated once, so some cookies and rows are signed
	// with the old hash key (no block key then).
	current := newAntonStore(oldDB, hashKey, blockKey, oldHashKey, nil)
	beforeRotation := newAntonStore(oldDB, oldHashKey)
	stranger := newAntonStore(oldDB, otherKey)
	now := time.Now()
	day := 24 * time.Hour
	created := now.Add(-2 * day)

	alice := current.save(t, map[any]any{"user": "alice", "visits": 3}, created, now.Add(7*day))
	rita := beforeRotation.save(t, map[any]any{"user": "rita"}, created, now.Add(day))
	expired := current.save(t, map[any]any{"user": "ed"}, created, now.Add(-time.Hour))
	nina := current.save(t, map[any]any{"user": "nina", 7: "seven"}, created, now.Add(day)) // a non-string key
	nan := current.save(t, map[any]any{"score": math.NaN()}, created, now.Add(day))
	cart := current.save(t, map[any]any{"cart": cartItem{"X1", 2}}, created, now.Add(day))
	forged := stranger.save(t, map[any]any{"user": "mallory"}, created, now.Add(day))

	// Olga's row was last saved 40 days ago by an app whose MaxAge is 60
	// days: the signature's timestamp is older than securecookie's default
	// 30 days, and her session is still live.
	signedAt := now.Add(-40 * day)
	olgaID := newAntonID()
	current.insert(t, olgaID, encodeAt(t, cookieName, map[any]any{"user": "olga"}, hashKey, blockKey, signedAt), signedAt, now.Add(20*day))
	olga := &http.Cookie{Name: cookieName, Value: encodeAt(t, cookieName, olgaID, hashKey, blockKey, signedAt)}
	var check string
	if err := securecookie.New(hashKey, blockKey).Decode(cookieName, olga.Value, &check); err == nil {
		t.Fatal("test setup: securecookie's default MaxAge should reject a 40-day-old value")
	}
	if err := securecookie.New(hashKey, blockKey).MaxAge(0).Decode(cookieName, olga.Value, &check); err != nil || check != olgaID {
		t.Fatalf("test setup: encodeAt does not match securecookie: %q, %v", check, err)
	}

	args := func(extra ...string) []string {
		return append([]string{
			"-dsn", dsn, "-schema", schema, "-cookie-name", cookieName,
			"-hash-key", hex.EncodeToString(hashKey), "-block-key", base64.StdEncoding.EncodeToString(blockKey),
			"-hash-key", "text:" + string(oldHashKey), "-block-key", "",
		}, extra...)
	}

	t.Run("dry run writes nothing", func(t *testing.T) {
		out, code := runMigrate(t, args("-table", "dry_sessions", "-dry-run")...)
		if code != 1 || !strings.Contains(out, "would migrate 3, already present 0, skipped expired 1, failed 4") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		var exists bool
		if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table("dry_sessions")).Scan(&exists); err != nil || exists {
			t.Fatalf("a dry run created the target table (%v)", err)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, code := runMigrate(t, args("-codec", "json")...)
		if code != 1 || !strings.Contains(out, "migrated 3, already present 0, skipped expired 1, failed 4") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		for _, want := range []string{
			"JSONCodec keys must be strings (use -codec gob",
			"NaN has no JSON form (use -codec gob",
			`name not registered for interface:`,
			`cartItem" (use -codec gob for the application's own types)`,
			"securecookie: the value is not valid",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the output does not report %q", want)
			}
		}
		if n := count(t, db, table("user_sessions")); n != 3 {
			t.Fatalf("%d rows in user_sessions, want 3", n)
		}

		st := newStore(t, db, pgstore.Config{SchemaName: schema})
		for name, c := range map[string]*http.Cookie{"alice": alice, "olga": olga, "rita": rita} {
			if _, s := load(t, st, c); s.IsNew || s.Values["user"] != name {
				t.Errorf("%s's old cookie: new %v, values %v", name, s.IsNew, s.Values)
			}
		}
		for name, c := range map[string]*http.Cookie{"expired": expired, "non-string key": nina, "NaN": nan, "struct": cart, "forged": forged} {
			if _, s := load(t, st, c); !s.IsNew {
				t.Errorf("%s: the old cookie loads a session: %v", name, s.Values)
			}
		}

		// The row is byte for byte what pgstore writes, and expires when
		// the old one did.
		aliceID := antonID(t, alice, hashKey, blockKey)
		var sess string
		var sameExpiry bool
		err := db.QueryRow(`SELECT n.sess::text, n.expire = date_trunc('milliseconds', o.expires_on AT TIME ZONE 'UTC')
			FROM `+table("user_sessions")+` n JOIN `+table("http_sessions")+` o ON o.key = convert_to(n.sid, 'UTF8')
			WHERE n.sid = $1`, aliceID).Scan(&sess, &sameExpiry)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"_pgstore":{"created":%d},"user":"alice","visits":3}`, created.Unix()); sess != want {
			t.Errorf("sess = %s, want %s", sess, want)
		}
		if !sameExpiry {
			t.Error("expire is not expires_on as UTC wall-clock time, to the millisecond")
		}

		// A migrated session is an ordinary one: its values are JSON
		// values now, and it saves.
		r, s := load(t, st, alice)
		if s.Values["visits"] != 3 {
			t.Errorf("visits = %#v, want int 3", s.Values["visits"])
		}
		s.Values["visits"] = 4
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			t.Fatalf("Save of a migrated session: %v", err)
		}
		if _, s := load(t, st, alice); s.Values["visits"] != 4 {
			t.Errorf("after Save, visits = %#v", s.Values["visits"])
		}

		// Again: nothing is overwritten.
		out, _ = runMigrate(t, args("-codec", "json")...)
		if !strings.Contains(out, "migrated 0, already present 3, skipped expired 1, failed 4") {
			t.Fatalf("second run:\n%s", out)
		}
		if _, s := load(t, st, alice); s.Values["visits"] != 4 {
			t.Error("the second run overwrote a session")
		}
		out, _ = runMigrate(t, args("-codec", "json", "-dry-run")...)
		if !strings.Contains(out, "would migrate 0, already present 3") {
			t.Fatalf("dry run over a migrated table:\n%s", out)
		}
	})

	t.Run("gob", func(t *testing.T) {
		out, code := runMigrate(t, args("-codec", "gob", "-table", "gob_sessions", "-batch", "2")...)
		if code != 1 || !strings.Contains(out, "migrated 6, already present 0, skipped expired 1, failed 1") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
		st := newStore(t, db, pgstore.Config{SchemaName: schema, TableName: "gob_sessions", Codec: pgstore.GobCodec{}})
		if _, s := load(t, st, cart); s.Values["cart"] != (cartItem{"X1", 2}) {
			t.Errorf("cart = %#v", s.Values["cart"])
		}
		if _, s := load(t, st, nina); s.Values[7] != "seven" || s.Values["user"] != "nina" {
			t.Errorf("nina's values: %v", s.Values)
		}
		if _, s := load(t, st, nan); !isNaN(s.Values["score"]) {
			t.Errorf("score = %#v", s.Values["score"])
		}
		for name, c := range map[string]*http.Cookie{"alice": alice, "olga": olga, "rita": rita} {
			if _, s := load(t, st, c); s.Values["user"] != name {
				t.Errorf("%s's old cookie: %v", name, s.Values)
			}
		}
		if _, s := load(t, st, expired); !s.IsNew {
			t.Error("an expired session was migrated")
		}
		var isObject bool
		if err := db.QueryRow(`SELECT bool_and(json_typeof(sess) = 'object' AND sess->'_pgstore'->>'created' IS NOT NULL
			AND sess->>'gob' IS NOT NULL) FROM ` + table("gob_sessions")).Scan(&isObject); err != nil || !isObject {
			t.Errorf("gob rows are not in GobCodec's format (%v)", err)
		}
	})
}

func isNaN(v any) bool {
	f, ok := v.(float64)
	return ok && math.IsNaN(f)
}

// antonID returns the session ID in an old cookie.
func antonID(t *testing.T, c *http.Cookie, keyPairs ...[]byte) string {
	t.Helper()
	var id string
	if err := securecookie.DecodeMulti(c.Name, c.Value, &id, securecookie.CodecsFromPairs(keyPairs...)...); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMigrateFlags(t *testing.T) {
	key := hex.EncodeToString(hashKey)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, exitOK, "Usage: pgstore migrate"},
		{[]string{"-hash-key", key}, exitUsage, "-cookie-name is required"},
		{[]string{"-cookie-name", "s"}, exitUsage, "-hash-key is required"},
		{[]string{"-cookie-name", "s", "-hash-key", key, "-codec", "xml"}, exitUsage, `-codec "xml"`},
		{[]string{"-cookie-name", "s", "-hash-key", key, "-hash-key", key, "-block-key", key}, exitUsage, "one -block-key per -hash-key"},
		{[]string{"-cookie-name", "s", "-hash-key", key, "-block-key", "hex:0102"}, exitUsage, "AES keys are 16, 24 or 32 bytes"},
		{[]string{"-cookie-name", "s", "-hash-key", "not a key!"}, exitUsage, `prefix a key used as plain text with "text:"`},
		{[]string{"-cookie-name", "s", "-hash-key", key, "extra"}, exitUsage, `unexpected argument "extra"`},
	} {
		var out bytes.Buffer
		code := run(context.Background(), append([]string{"migrate"}, tc.args...), &out, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("migrate %q: exit %d, output %q; want exit %d and %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	raw := []byte{0xfb, 0xff, 0x01, 0x02, 0x03, 0x04}
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"", nil},
		{"fbff01020304", raw},
		{"hex:fbff01020304", raw},
		{base64.StdEncoding.EncodeToString(raw), raw},
		{base64.URLEncoding.EncodeToString(raw), raw},
		{base64.RawStdEncoding.EncodeToString(raw[:5]), raw[:5]},
		{"base64:" + base64.RawURLEncoding.EncodeToString(raw[:5]), raw[:5]},
		{"text:my secret", []byte("my secret")},
	} {
		got, err := parseKey(tc.in)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("parseKey(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"hex:zz", "base64:***", "no way!"} {
		if _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) succeeded", bad)
		}
	}
}

// gobBytesCodec writes what GobCodec writes for the same values.
func TestGobBytesCodec(t *testing.T) {
	values := map[any]any{"a": 1}
	gobbed, err := pgstore.GobCodec{}.Encode(values)
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Gob []byte }
	if err := json.Unmarshal(gobbed, &env); err != nil {
		t.Fatal(err)
	}
	got, err := gobBytesCodec{}.Encode(map[any]any{gobBytesKey{}: env.Gob})
	if err != nil || !bytes.Equal(got, gobbed) {
		t.Errorf("gobBytesCodec wrote %s, %v; GobCodec wrote %s", got, err, gobbed)
	}
	back := map[any]any{}
	if err := (gobBytesCodec{}).Decode(got, back); err != nil || back["a"] != 1 {
		t.Errorf("Decode = %v, %v", back, err)
	}
	if _, err := (gobBytesCodec{}).Encode(values); !errors.Is(err, pgstore.ErrEncode) {
		t.Errorf("Encode of values that are not gob bytes: %v", err)
	}
}

// Many failures are listed up to a bound, then counted by reason.
func TestReportManyFailures(t *testing.T) {
	var r result
	for i := 1; i <= maxListed+5; i++ {
		reason := "securecookie: the value is not valid"
		if i%2 == 0 {
			reason = "the data column is empty"
		}
		r.fail(int64(i), reason)
	}
	r.migrated = 7
	var out bytes.Buffer
	r.print(&out, false)
	for _, want := range []string{
		"failed: row id 100: the data column is empty\n",
		"failed: ... and 5 more rows\n",
		"failed: 53 rows: securecookie: the value is not valid\n",
		"failed: 52 rows: the data column is empty\n",
		"migrated 7, already present 0, skipped expired 0, failed 105\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "row id 101:") {
		t.Error("more than maxListed rows listed")
	}
}

// A session longer than -max-length (Config.MaxLength) is reported, in a
// dry run too, and not written; a higher limit copies it.
func TestMigrateMaxLength(t *testing.T) {
	dsn := pgtest.Require(t)
	db := pgtest.OpenDSN(t, "postgres", dsn)
	schema := pgtest.Schema(t, db)
	oldDB := pgtest.OpenDSN(t, "postgres", pgtest.WithParams(dsn, map[string]string{"options": "-c search_path=" + schema}))
	if _, err := oldDB.Exec(antonDDL); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	big := newAntonStore(oldDB, hashKey, blockKey).save(t, map[any]any{"notes": strings.Repeat("n", 2000)}, now, now.Add(time.Hour))
	args := []string{"-dsn", dsn, "-schema", schema, "-cookie-name", cookieName,
		"-hash-key", hex.EncodeToString(hashKey), "-block-key", hex.EncodeToString(blockKey)}

	for _, extra := range [][]string{{"-max-length", "1000", "-dry-run"}, {"-max-length", "1000"}} {
		out, code := runMigrate(t, append(args, extra...)...)
		if code != exitFailed || !strings.Contains(out, "Config.MaxLength is 1000 (raise -max-length") ||
			!strings.Contains(out, " 0, already present 0, skipped expired 0, failed 1") {
			t.Fatalf("%q: exit %d, output:\n%s", extra, code, out)
		}
	}
	if n := count(t, db, qualified(schema, pgstore.DefaultTableName)); n != 0 {
		t.Fatalf("%d rows written", n)
	}
	if out, code := runMigrate(t, args...); code != exitOK || !strings.Contains(out, "migrated 1, already present 0") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	st := newStore(t, db, pgstore.Config{SchemaName: schema})
	if _, s := load(t, st, big); len(fmt.Sprint(s.Values["notes"])) != 2000 {
		t.Errorf("the large session: %v", s.Values)
	}
}

// A row that expires between the read and its import counts as expired,
// not failed: the run's cutoff is taken once, at the start.
func TestMigrateExpiredDuringRun(t *testing.T) {
	_, schema, st, db := testTable(t)
	m := &migrator{st: st, db: db, to: qualified(schema, pgstore.DefaultTableName)}
	var res result
	batch := []row{
		{srcID: 1, sid: "expired-meanwhile", values: map[any]any{"a": 1}, expires: time.Now().Add(-time.Second)},
		{srcID: 2, sid: "still-live", values: map[any]any{"a": 1}, expires: time.Now().Add(time.Hour)},
	}
	if err := m.write(context.Background(), batch, true, &res); err != nil {
		t.Fatal(err)
	}
	if res.expired != 1 || res.failed != 0 || res.migrated != 1 {
		t.Errorf("result %+v; want 1 expired, 1 migrated, none failed", res)
	}
}

// Failed rows are listed in the old table's order, whichever step refused
// them (decoding, at the read, or Import, at the write).
func TestReportOrder(t *testing.T) {
	var r result
	r.fail(5, "refused by Import")
	r.fail(2, "failed to decode")
	var out bytes.Buffer
	r.print(&out, false)
	if i, j := strings.Index(out.String(), "row id 2:"), strings.Index(out.String(), "row id 5:"); i < 0 || j < i {
		t.Errorf("rows out of order:\n%s", out.String())
	}
}
