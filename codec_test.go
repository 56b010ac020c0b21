package pgstore_test

import (
	"database/sql"
	"encoding/gob"
	"errors"
	"math"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

// What comes back after a round trip through the JSON codec and
// PostgreSQL, for each documented type.
func TestJSONRoundTripTypes(t *testing.T) {
	when := time.Date(2026, 11, 27, 9, 30, 0, 123456789, time.UTC)
	type profile struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	cases := []struct {
		name     string
		in, want any
	}{
		{"string", "héllo \"quoted\" <tag> & \u2028", "héllo \"quoted\" <tag> & \u2028"},
		{"bool", true, true},
		{"int", 42, 42},
		{"negative int", -7, -7},
		{"int64", int64(1) << 53, 1 << 53},
		{"uint8", uint8(200), 200},
		{"float64", 1.5, 1.5},
		{"whole float64", 2.0, 2.0},
		{"tiny float", 1e-9, 1e-9},
		{"huge float", 1e300, 1e300},
		{"float32", float32(0.25), 0.25},
		{"[]string", []string{"a", "b"}, []any{"a", "b"}},
		{"[]int", []int{1, 2}, []any{1, 2}},
		{"empty slice", []string{}, []any{}},
		{"map", map[string]any{"a": 1, "b": "x"}, map[string]any{"a": 1, "b": "x"}},
		{"nested", map[string]any{"l": []any{1, 2.5, map[string]int{"z": 3}}}, map[string]any{"l": []any{1, 2.5, map[string]any{"z": 3}}}},
		{"nil", nil, nil},
		{"NUL", "a\x00b", "a\x00b"},
		{"nested NUL", map[string]any{"x": []string{"ok", "a\x00"}}, map[string]any{"x": []any{"ok", "a\x00"}}},
		{"9,999 levels", nested(9999), nested(9999)},
		{"nil slice", []string(nil), nil},
		{"time.Time", when, when.Format(time.RFC3339Nano)},
		{"struct", profile{"ann", 30}, map[string]any{"name": "ann", "age": 30}},
		{"pointer to struct", &profile{"bo", 5}, map[string]any{"name": "bo", "age": 5}},
		{"[]byte", []byte("hi"), "aGk="},
		{"control chars", "a\tb\nc\x01", "a\tb\nc\x01"},
	}
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		values := map[any]any{}
		for _, tc := range cases {
			values[tc.name] = tc.in
		}
		c := login(t, st, values)
		_, s := get(t, st, c)
		for _, tc := range cases {
			got, ok := s.Values[tc.name]
			if !ok {
				t.Errorf("%s: missing after round trip", tc.name)
				continue
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: got %#v (%T), want %#v (%T)", tc.name, got, got, tc.want, tc.want)
			}
		}
		if _, ok := s.Values["_pgstore"]; ok {
			t.Error("the store's own member leaked into Values")
		}
		// The documented idiom works.
		if n := s.Values["int"].(int); n != 42 {
			t.Error(n)
		}
	})
}

// Keys that are not strings, and values JSON cannot hold, make
// Save fail with an error naming the key, and nothing is written, neither
// for a new session nor over an existing one.
func TestUnencodableValues(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	cases := []struct {
		key   any
		value any
		want  string
	}{
		{42, "x", "session key 42"},
		{struct{}{}, "x", "session key struct {}"},
		{"ch", make(chan int), `"ch"`},
		{"fn", func() {}, `"fn"`},
		{"nan", math.NaN(), `"nan"`},
		{"inf", math.Inf(1), `"inf"`},
		{"complex", complex(1, 2), `"complex"`},
		{"cycle", cyclic, `"cycle"`},
		{"a\xffb", "x", "not valid UTF-8"}, // values may be any string; keys must be UTF-8
		{"too deep", nested(10000), `"too deep"`},
		{"_pgstore", 1, "reserved"},
		{"bad key map", map[int]string{1: "a"}, `"bad key map"`},
	}
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{})
		existing := login(t, st, map[any]any{"user": "alice"})
		for _, tc := range cases {
			// New session: nothing written, no cookie.
			r, s := get(t, st, nil)
			s.Values["fine"] = 1
			s.Values[tc.key] = tc.value
			w := httptest.NewRecorder()
			err := st.Save(r, w, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, pgstore.ErrEncode) || !strings.HasPrefix(err.Error(), "pgstore: ") {
				t.Errorf("key %v: err %v, want one naming %s and wrapping ErrEncode", tc.key, err, tc.want)
			}
			if responseCookie(w, cookieName) != nil {
				t.Errorf("key %v: cookie set", tc.key)
			}
			// Existing session: the row keeps its old value.
			r, s = get(t, st, existing)
			s.Values[tc.key] = tc.value
			if err := st.Save(r, httptest.NewRecorder(), s); err == nil {
				t.Errorf("key %v: Save over an existing session succeeded", tc.key)
			}
			if _, s := get(t, st, existing); s.Values["user"] != "alice" || len(s.Values) != 1 {
				t.Errorf("key %v: existing session now %v", tc.key, s.Values)
			}
		}
		if n := rowCount(t, db, st.SchemaName(), "user_sessions"); n != 1 {
			t.Errorf("%d rows, want only the existing one", n)
		}
	})
}

type cartItem struct {
	SKU string
	Qty int
}

func init() {
	gob.Register(cartItem{})
	gob.Register(map[string]any{})
}

// The gob codec keeps registered types (and non-string keys)
// inside the json column.
func TestGobCodec(t *testing.T) {
	eachDriver(t, func(t *testing.T, db *sql.DB) {
		st := newTestStore(t, db, pgstore.Config{Codec: pgstore.GobCodec{}, AbsoluteTimeout: time.Hour})
		c := login(t, st, map[any]any{"cart": cartItem{"X1", 2}, 7: "seven"})
		_, s := get(t, st, c)
		if got, ok := s.Values["cart"].(cartItem); !ok || got != (cartItem{"X1", 2}) {
			t.Errorf("cart = %#v", s.Values["cart"])
		}
		if s.Values[7] != "seven" {
			t.Errorf("int key: %v", s.Values[7])
		}
		sess, _ := row(t, db, st.SchemaName(), decodeID(t, c))
		if !strings.Contains(sess, `"gob":"`) || !strings.Contains(sess, `"_pgstore":{"created":`) {
			t.Errorf("row %s", sess)
		}
		var isObject bool
		if err := db.QueryRow(`SELECT json_typeof(sess) = 'object' FROM ` + qualified(st.SchemaName(), "user_sessions")).Scan(&isObject); err != nil || !isObject {
			t.Errorf("sess is not a JSON object: %v", err)
		}
		// Gob writes maps in random order; an unchanged session still costs
		// no write.
		r0, s0 := get(t, st, c)
		s0.Values["m"] = map[string]any{"a": 1, "b": "x", "c": 3.5, "d": true}
		s0.Values["e"], s0.Values["f"], s0.Values["g"] = 1, 2, 3
		save(t, st, r0, s0)
		before := xmin(t, db, st.SchemaName(), decodeID(t, c))
		for i := 0; i < 20; i++ {
			r, s := get(t, st, c)
			save(t, st, r, s)
		}
		if xmin(t, db, st.SchemaName(), decodeID(t, c)) != before {
			t.Error("unchanged gob sessions were written")
		}
		// Unencodable for gob: an unregistered type in an interface.
		r, s := get(t, st, c)
		s.Values["bad"] = struct{ C chan int }{}
		if err := st.Save(r, httptest.NewRecorder(), s); err == nil || !errors.Is(err, pgstore.ErrEncode) {
			t.Errorf("gob of a channel: %v", err)
		}
	})
}

// The encoding is deterministic, which unchanged-session detection relies
// on.
func TestJSONCodecIsDeterministic(t *testing.T) {
	values := map[any]any{"b": map[string]any{"y": 1, "x": []any{"q", 2.5}}, "a": true, "c": nil}
	first, err := pgstore.JSONCodec{}.Encode(values)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":true,"b":{"x":["q",2.5],"y":1},"c":null}`
	if string(first) != want {
		t.Fatalf("got %s, want %s", first, want)
	}
	for i := 0; i < 50; i++ {
		again, _ := pgstore.JSONCodec{}.Encode(values)
		if string(again) != string(first) {
			t.Fatalf("encoding changed: %s vs %s", again, first)
		}
	}
}

// nested is a value of n nested []any, the innermost holding "x".
func nested(n int) any {
	var v any = "x"
	for range n {
		v = []any{v}
	}
	return v
}
