package pgstore_test

import (
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// Code written for CookieStore, FilesystemStore or antonlindstrom/pgstore
// configures the store after making it: the Options field, MaxAge and
// MaxLength work as in gorilla's stores.
func TestGorillaStoreAPI(t *testing.T) {
	db := sharedDB(t, "postgres")
	st := newTestStore(t, db, pgstore.Config{})

	st.Options = &sessions.Options{Path: "/app", MaxAge: 3600, HttpOnly: true}
	st.Options.Secure = false
	r, s := get(t, st, nil)
	if *s.Options != *st.Options {
		t.Fatalf("new session options %+v, want the store's %+v", *s.Options, *st.Options)
	}
	s.Values["user"] = "ada"
	c := save(t, st, r, s)
	if c.Path != "/app" || c.MaxAge != 3600 || c.Secure || !c.HttpOnly {
		t.Fatalf("cookie %+v, want Path /app, Max-Age 3600, HttpOnly, not Secure", c)
	}
	if ttl := rowTTL(t, db, st, c); ttl < 3500 || ttl > 3600 {
		t.Fatalf("row lives %v s, want about 3600", ttl)
	}

	st.MaxAge(7200)
	r, s = get(t, st, nil)
	s.Values["user"] = "bob"
	c2 := save(t, st, r, s)
	if c2.MaxAge != 7200 || c2.Path != "/app" {
		t.Fatalf("after MaxAge(7200): cookie %+v", c2)
	}
	if ttl := rowTTL(t, db, st, c2); ttl < 7100 || ttl > 7200 {
		t.Fatalf("after MaxAge(7200): row lives %v s", ttl)
	}

	st.MaxLength(200)
	r, s = get(t, st, nil)
	s.Values["big"] = strings.Repeat("x", 300)
	if err := st.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrTooLarge) {
		t.Fatalf("MaxLength(200), 300-byte value: %v", err)
	}
	st.MaxLength(0) // gorilla's "no limit"
	s.Values["big"] = strings.Repeat("x", 100_000)
	if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
		t.Fatalf("MaxLength(0), 100 kB value: %v", err)
	}

	st.Options = nil
	if _, s := get(t, st, nil); *s.Options != *pgstore.DefaultOptions() {
		t.Fatalf("with Options nil: %+v, want DefaultOptions", *s.Options)
	}
}

// rowTTL is how many seconds the row of cookie c has left.
func rowTTL(t *testing.T, db *sql.DB, st *pgstore.Store, c *http.Cookie) float64 {
	t.Helper()
	_, s := get(t, st, c)
	var ttl float64
	if err := db.QueryRow(`SELECT date_part('epoch', expire - (now() AT TIME ZONE 'UTC')) FROM `+
		qualified(st.SchemaName(), "user_sessions")+` WHERE sid = $1`, s.ID).Scan(&ttl); err != nil {
		t.Fatal(err)
	}
	return ttl
}

// Any Go string round-trips with the default codec, byte for byte, also
// one that is not valid UTF-8 (gothic keeps gzip output in a string);
// valid strings stay plain JSON strings.
func TestAnyStringRoundTrips(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"AuthURL":"https://example.test/auth?state=xyz"}`))
	zw.Close()
	values := map[any]any{
		"gothic": gz.String(),
		"ff":     "a\xffb",
		"lone":   "\xed\xa0\x80", // a UTF-16 surrogate, invalid in UTF-8
		"nested": map[string]any{"raw": "\xc3", "list": []any{"ok", "\x80"}},
		"plain":  "héllo",
	}
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		c := login(t, st, values)
		r, s := get(t, st, c)
		for k, want := range values {
			if got := s.Values[k]; !reflect.DeepEqual(got, want) {
				t.Errorf("%v: got %q, want %q", k, got, want)
			}
		}
		var plain string
		if err := db.QueryRow(`SELECT sess::json ->> 'plain' FROM `+qualified(st.SchemaName(), "user_sessions")+` WHERE sid = $1`, s.ID).Scan(&plain); err != nil || plain != "héllo" {
			t.Errorf("a valid string is not a plain JSON string: %q, %v", plain, err)
		}
		// A map that looks like the wrapper is refused: it would read back
		// as a string.
		r2, s2 := get(t, st, nil)
		s2.Values["prefs"] = map[string]any{"_pgstore_b64": "/w=="}
		if err := st.Save(r2, httptest.NewRecorder(), s2); !errors.Is(err, pgstore.ErrEncode) {
			t.Errorf("Save of a map whose one key is _pgstore_b64: %v, want ErrEncode", err)
		}
		// Saved again unchanged, and changed, it stays the same.
		s.Values["n"] = 1
		save(t, st, r, s)
		if _, s := get(t, st, c); s.Values["gothic"] != gz.String() || s.Values["ff"] != "a\xffb" {
			t.Errorf("after a second save: %q, %q", s.Values["gothic"], s.Values["ff"])
		}
	})
}

// profile is a gob-registered type of an application's.
type profile struct {
	Name  string
	Roles []string
}

func init() { gob.Register(profile{}) }

// Switching the codec never logs anyone out: a store on GobCodec reads the
// rows JSONCodec wrote, and the other way round, values intact; a row
// neither can read is ErrCorrupt.
func TestCodecSwitch(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		// Reading GobCodec's rows with JSONCodec is asked for, for the
		// time of the move: a session's own string under "gob" must not
		// be read as a gob stream otherwise.
		jsonStore := newTestStore(t, db, pgstore.Config{Codec: pgstore.JSONCodec{ReadGobRows: true}})
		gobStore := newTestStore(t, db, pgstore.Config{SchemaName: jsonStore.SchemaName(), Codec: pgstore.GobCodec{}})

		// JSON -> Gob.
		jsonValues := map[any]any{"user": "ada", "n": 3, "f": 1.5, "tags": []any{"a", "b"},
			"prefs": map[string]any{"dark": true}, "raw": "a\xffb"}
		c := login(t, jsonStore, jsonValues)
		r, s := get(t, gobStore, c)
		if s.IsNew || !reflect.DeepEqual(s.Values, jsonValues) {
			t.Fatalf("GobCodec reading a JSONCodec row: new %v, %#v", s.IsNew, s.Values)
		}
		s.Values["n"] = 4
		save(t, gobStore, r, s) // now a gob row
		_, s = get(t, gobStore, c)
		if s.Values["n"] != 4 || s.Values["user"] != "ada" || !reflect.DeepEqual(s.Values["tags"], []any{"a", "b"}) {
			t.Fatalf("GobCodec after rewriting the row: %#v", s.Values)
		}

		// Gob -> JSON.
		p := profile{Name: "grace", Roles: []string{"admin"}}
		c2 := login(t, gobStore, map[any]any{"user": "grace", "profile": p, "n": 7})
		r, s = get(t, jsonStore, c2)
		if s.IsNew || s.Values["user"] != "grace" || s.Values["n"] != 7 || !reflect.DeepEqual(s.Values["profile"], p) {
			t.Fatalf("JSONCodec reading a GobCodec row: new %v, %#v", s.IsNew, s.Values)
		}
		s.Values["n"] = 8
		save(t, jsonStore, r, s) // now a JSON row; the struct as its JSON object
		_, s = get(t, jsonStore, c2)
		if s.Values["n"] != 8 || !reflect.DeepEqual(s.Values["profile"], map[string]any{"Name": "grace", "Roles": []any{"admin"}}) {
			t.Fatalf("JSONCodec after rewriting the row: %#v", s.Values)
		}
		// The gob store written row also still reads in the gob store.
		if _, s := get(t, gobStore, c); s.Values["n"] != 4 {
			t.Fatalf("gob row: %#v", s.Values)
		}

		// A row neither reads.
		c3 := login(t, jsonStore, map[any]any{"x": 1})
		_, s = get(t, jsonStore, c3)
		if _, err := db.Exec(`UPDATE `+qualified(jsonStore.SchemaName(), "user_sessions")+` SET sess = '{"gob":"not base64!"}' WHERE sid = $1`, s.ID); err != nil {
			t.Fatal(err)
		}
		// (JSONCodec reads it: a string under the key "gob".)
		if _, err := gobStore.Get(request(c3), cookieName); !errors.Is(err, pgstore.ErrCorrupt) {
			t.Errorf("GobCodec on a broken gob row: %v, want ErrCorrupt", err)
		}
	})
}

// A session's own string under "gob" is never read as a gob stream by the
// default JSONCodec: a user who chose that string would choose the
// session's values. With ReadGobRows, such a session cannot be written.
func TestGobStringIsNotAGobRow(t *testing.T) {
	db := sharedDB(t, "pgx")
	st := newTestStore(t, db, pgstore.Config{})
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(map[any]any{"user_id": 1, "role": "admin"}); err != nil {
		t.Fatal(err)
	}
	chosen := base64.StdEncoding.EncodeToString(buf.Bytes())
	c := login(t, st, map[any]any{"gob": chosen})
	if _, s := get(t, st, c); len(s.Values) != 1 || s.Values["gob"] != chosen {
		t.Fatalf("a string under \"gob\" came back as %#v", s.Values)
	}

	migrating := newTestStore(t, db, pgstore.Config{SchemaName: st.SchemaName(), Codec: pgstore.JSONCodec{ReadGobRows: true}})
	r, s := get(t, migrating, nil)
	s.Values["gob"] = chosen
	if err := migrating.Save(r, httptest.NewRecorder(), s); !errors.Is(err, pgstore.ErrEncode) {
		t.Fatalf("ReadGobRows, Save of a lone string under \"gob\": %v, want ErrEncode", err)
	}
	_, err := pgstore.New(db, pgstore.Config{ExpressSecrets: []string{"s"}, SchemaName: st.SchemaName(), PruneInterval: -1,
		Codec: pgstore.JSONCodec{ReadGobRows: true}})
	if !errors.Is(err, pgstore.ErrConfig) {
		t.Fatalf("ReadGobRows with ExpressSecrets: %v, want ErrConfig", err)
	}
}
