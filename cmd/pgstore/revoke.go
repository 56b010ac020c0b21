package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pgsessions/pgstore"
)

var revokeCommand = &command{
	name:    "revoke",
	args:    "-key KEY -value VALUE [flags]",
	summary: "delete every session whose value at a key equals a value",
	doc: `Deletes every session whose value at KEY equals VALUE (Store.Revoke), for
example all sessions of a user whose password was stolen, and prints how
many: "sign out everywhere". To end one session, see pgstore sessions.

VALUE is read as JSON when it is a JSON string, number or boolean, and as
a string otherwise: -value 42 and -value true are the number and the
boolean, -value alice and -value '"42"' are strings. As in Store.Revoke, the
comparison is on the text PostgreSQL's ->> gives, so the number 42 also
matches a session holding the string "42". Sessions stored with GobCodec
are never matched.
`,
	flags: func(fs *flag.FlagSet, o *common) func(context.Context, io.Writer) error {
		var key, value string
		fs.StringVar(&key, "key", "", "the session `key` to match, such as user_id (required)")
		fs.StringVar(&value, "value", "", "the `value` to match: JSON when it parses as a string, number or boolean, else a string (required)")
		return func(ctx context.Context, stdout io.Writer) error {
			if key == "" {
				return usageError{errors.New("-key is required")}
			}
			if value == "" {
				return usageError{errors.New("-value is required")}
			}
			v, err := revokeValue(value)
			if err != nil {
				return usageError{err}
			}
			st, err := o.open(ctx, false, pgstore.Config{})
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := st.Revoke(ctx, key, v)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "revoked %d sessions\n", n)
			return nil
		}
	},
}

// revokeValue reads -value: a JSON string, number or boolean as such (an
// integer as an int64), anything that is not JSON as a string.
func revokeValue(s string) (any, error) {
	if !json.Valid([]byte(s)) {
		return s, nil
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("-value %s: %w", s, err)
	}
	switch v := v.(type) {
	case string, bool:
		return v, nil
	case json.Number:
		if n, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return n, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("-value %s: %w", s, err)
		}
		return f, nil
	default:
		return nil, fmt.Errorf("-value %s: sessions are revoked by a string, number or boolean, not %s", s, jsonKind(v))
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
