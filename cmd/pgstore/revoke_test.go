package main

import (
	"slices"
	"testing"
	"time"
)

// revoke deletes the sessions whose value at the key matches, whether the
// value was given as a number or a string, and says how many.
func TestRevoke(t *testing.T) {
	dsn, schema, st, db := testTable(t)
	later := time.Now().Add(time.Hour)
	importSession(t, st, "a42", map[any]any{"user_id": 42}, later)
	importSession(t, st, "b42", map[any]any{"user_id": 42, "device": "phone"}, later)
	importSession(t, st, "c7", map[any]any{"user_id": 7}, later)
	importSession(t, st, "alice", map[any]any{"user": "alice"}, later)
	importSession(t, st, "bob", map[any]any{"user": "bob"}, later)

	out, _, code := runCLI(t, "revoke", "-dsn", dsn, "-schema", schema, "-key", "user_id", "-value", "42")
	if code != exitOK || out != "revoked 2 sessions\n" {
		t.Fatalf("exit %d, output %q", code, out)
	}
	out, _, code = runCLI(t, "revoke", "-dsn", dsn, "-schema", schema, "-key", "user", "-value", "alice")
	if code != exitOK || out != "revoked 1 sessions\n" {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if got := sids(t, db, schema); !slices.Equal(got, []string{"bob", "c7"}) {
		t.Errorf("rows left: %q", got)
	}
}

func TestRevokeValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"alice", "alice"},
		{`"42"`, "42"},
		{"42", int64(42)},
		{" -7 ", int64(-7)},
		{"1.5", 1.5},
		{"1e400", nil},
		{"true", true},
		{"false", false},
		{"tru", "tru"},
		{"42 43", "42 43"},
		{"{", "{"},
	} {
		got, err := revokeValue(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("revokeValue(%q) = %#v; want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("revokeValue(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"null", "[1]", `{"a":1}`} {
		if v, err := revokeValue(bad); err == nil {
			t.Errorf("revokeValue(%q) = %#v; want an error", bad, v)
		}
	}
}
