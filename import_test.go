package pgstore_test

import (
	"context"
	"database/sql"
	"encoding/gob"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/pgsessions/pgstore"
)

// cookieFor is the native cookie for id, signed with hashKey1 as the store
// signs it.
func cookieFor(t *testing.T, id string) *http.Cookie {
	t.Helper()
	v, err := securecookie.New(hashKey1, nil).SetSerializer(securecookie.NopEncoder{}).Encode(cookieName, []byte(id))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: cookieName, Value: v}
}

// storedSess returns the sess column and expire (epoch milliseconds, UTC
// wall clock) of the row with this sid, and whether there is one.
func storedSess(t *testing.T, st *pgstore.Store, sid string) (sess string, expireMS int64, ok bool) {
	t.Helper()
	err := st.DB().QueryRow(`SELECT sess::text, (extract(epoch FROM expire AT TIME ZONE 'UTC') * 1000)::int8 FROM `+
		qualified(st.SchemaName(), pgstore.DefaultTableName)+` WHERE sid = $1`, sid).Scan(&sess, &expireMS)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return sess, expireMS, true
}

// An imported session is a row as Save writes it, under the given ID, and
// the cookie carrying that ID loads it. A second import of the ID changes
// nothing.
func TestImport(t *testing.T) {
	t.Parallel()
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		ctx := context.Background()
		created := time.Unix(time.Now().Add(-48*time.Hour).Unix(), 0)
		expires := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Millisecond)
		const id = "MIGRATED-session_ID0"
		ok, err := st.Import(ctx, id, map[any]any{"user": "alice", "visits": 3}, created, expires)
		if err != nil || !ok {
			t.Fatalf("Import = %v, %v; want true, nil", ok, err)
		}
		sess, expireMS, found := storedSess(t, st, id)
		if !found {
			t.Fatal("no row under the imported ID")
		}
		if want := `{"_pgstore":{"created":` + strconv.FormatInt(created.Unix(), 10) + `},"user":"alice","visits":3}`; sess != want {
			t.Errorf("sess = %s, want %s", sess, want)
		}
		if expireMS != expires.UnixMilli() {
			t.Errorf("expire = %d ms, want %d", expireMS, expires.UnixMilli())
		}
		r := request(cookieFor(t, id))
		s, err := st.Get(r, cookieName)
		if err != nil || s.IsNew || s.ID != id || s.Values["user"] != "alice" || s.Values["visits"] != 3 {
			t.Fatalf("Get with the ID's cookie: new %v, ID %q, values %v, err %v", s.IsNew, s.ID, s.Values, err)
		}

		ok, err = st.Import(ctx, id, map[any]any{"user": "mallory"}, time.Time{}, expires.Add(time.Hour))
		if err != nil || ok {
			t.Fatalf("second Import = %v, %v; want false, nil", ok, err)
		}
		if again, _, _ := storedSess(t, st, id); again != sess {
			t.Errorf("the second Import overwrote the row: %s", again)
		}
	})
}

// Import refuses what Save would refuse, and what cannot be a session, with
// a pgstore error, and writes nothing.
func TestImportRefuses(t *testing.T) {
	t.Parallel()
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{MaxLength: 200})
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name    string
		id      string
		values  map[any]any
		expires time.Time
		is      error
		want    string
	}{
		{"empty ID", "", nil, later, nil, "the ID is not 1 to 256"},
		{"ID with a dot", "a.b", nil, later, nil, "the ID is not 1 to 256"},
		{"long ID", strings.Repeat("a", 257), nil, later, nil, "the ID is not 1 to 256"},
		{"expired", "expired1", map[any]any{"a": 1}, time.Now().Add(-time.Second), nil, "it expired at"},
		{"too large", "large1", map[any]any{"a": strings.Repeat("x", 300)}, later, pgstore.ErrTooLarge, "Config.MaxLength is 200"},
		{"non-string key", "key1", map[any]any{1: "x"}, later, pgstore.ErrEncode, "JSONCodec keys must be strings"},
	} {
		ok, err := st.Import(ctx, tc.id, tc.values, time.Time{}, tc.expires)
		if ok || err == nil || !strings.HasPrefix(err.Error(), "pgstore: ") || strings.Count(err.Error(), "pgstore:") != 1 ||
			!strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: Import = %v, %v; want a pgstore error saying %q (wrapping %v)", tc.name, ok, err, tc.want, tc.is)
		}
		if tc.id != "" {
			if _, _, found := storedSess(t, st, tc.id); found {
				t.Errorf("%s: a row was written", tc.name)
			}
		}
	}
}

// Under Config.AbsoluteTimeout the row expires when the session's absolute
// timeout ends, if that is sooner.
func TestImportAbsoluteTimeout(t *testing.T) {
	t.Parallel()
	st := newTestStore(t, sharedDB(t, "postgres"), pgstore.Config{AbsoluteTimeout: 24 * time.Hour})
	created := time.Unix(time.Now().Add(-23*time.Hour).Unix(), 0)
	if ok, err := st.Import(context.Background(), "abs1", map[any]any{"a": 1}, created, time.Now().Add(7*24*time.Hour)); !ok || err != nil {
		t.Fatalf("Import = %v, %v", ok, err)
	}
	if _, expireMS, _ := storedSess(t, st, "abs1"); expireMS != created.Add(24*time.Hour).UnixMilli() {
		t.Errorf("expire = %v, want created + 24h = %v", time.UnixMilli(expireMS).UTC(), created.Add(24*time.Hour).UTC())
	}
	if ok, err := st.Import(context.Background(), "abs2", map[any]any{"a": 1}, created.Add(-2*time.Hour), time.Now().Add(time.Hour)); ok || err == nil {
		t.Errorf("a session past its absolute timeout was imported: %v, %v", ok, err)
	}
}

// importedThing is a gob-registered value for TestImportHashIDsGob.
type importedThing struct{ N int }

// Under HashIDs the row's sid is the ID's hash; with GobCodec the values
// are gob. The cookie carrying the ID loads the session either way.
func TestImportHashIDsGob(t *testing.T) {
	t.Parallel()
	gob.Register(importedThing{})
	st := newTestStore(t, sharedDB(t, "postgres"), pgstore.Config{HashIDs: true, Codec: pgstore.GobCodec{}})
	const id = "hashed-gob-ID"
	if ok, err := st.Import(context.Background(), id, map[any]any{7: importedThing{5}}, time.Time{}, time.Now().Add(time.Hour)); !ok || err != nil {
		t.Fatalf("Import = %v, %v", ok, err)
	}
	if _, _, found := storedSess(t, st, id); found {
		t.Error("the raw ID is stored under HashIDs")
	}
	sess, _, found := storedSess(t, st, pgstore.HashID(id))
	if !found || !strings.Contains(sess, `"gob"`) {
		t.Fatalf("the row under the ID's hash: %v %s", found, sess)
	}
	s, err := st.Get(request(cookieFor(t, id)), cookieName)
	if err != nil || s.IsNew || s.Values[7] != (importedThing{5}) {
		t.Fatalf("Get: new %v, values %v, err %v", s.IsNew, s.Values, err)
	}
}

// In Express mode an imported session is a row express-session reads: Node
// finds its values behind a cookie it signed for the ID.
func TestImportExpressReadByNode(t *testing.T) {
	t.Parallel()
	schema := expressSchema(t)
	node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}})
	db := sharedDB(t, "postgres")
	st := newExpressStore(t, db, schema, []string{newSecret})
	const id = "imported-into-express-0123456789"
	expires := time.Now().Add(3 * time.Hour).Truncate(time.Millisecond)
	if ok, err := st.Import(context.Background(), id, map[any]any{"user": "erin", "roles": []string{"ops"}}, time.Time{}, expires); !ok || err != nil {
		t.Fatalf("Import = %v, %v", ok, err)
	}
	row, ok := readRow(t, db, schema, nodeTimeZone(t), id)
	if !ok {
		t.Fatal("no row")
	}
	// Rounded up to a whole second, as Save writes Express rows.
	if whole := expires.Truncate(time.Second); whole.Before(expires) {
		expires = whole.Add(time.Second)
	}
	if exp := row.cookieExpires(t); !exp.Equal(expires) || !row.expire.Equal(expires) {
		t.Errorf("cookie.expires %v, expire %v; want both %v", exp, row.expire, expires)
	}
	w := node.whoami(t, "s:"+id+"."+sign(newSecret, id)) // a 500 means Node rejected the row
	if w.User != "erin" || w.SID != id || !reflect.DeepEqual(w.Session["roles"], []any{"ops"}) {
		t.Fatalf("Node read the imported session as %+v", w)
	}
}
