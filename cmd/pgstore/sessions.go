package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/pgsessions/pgstore"
)

// sessionsKeysDoc is the part of the sessions commands' doc on keys.
const sessionsKeysDoc = `Handles are derived from the session IDs with the application's first
signing key (Config.KeyPairs[0]) or, in Express mode, its first secret
(Config.ExpressSecrets[0]), so the command needs the same one: give the
name of the environment variable that holds it, never the key itself.
-hash-key-env takes the variable's characters as the key, as an
application does with KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}
(docs/production.md); prefix the name with "hex:" or "base64:" when the
application decodes the variable, as in -hash-key-env hex:SESSION_KEY.
-express-secret-env takes the secret's characters too, and opens the
table in Express mode (its tombstones must exist). With another key the
handles differ from the application's, and end finds nothing.

VALUE is read as revoke reads it: -value 42 is the number, -value '"42"'
the string, and either matches a session holding 42 or "42". Sessions
stored with GobCodec are never matched.
`

var sessionsListCommand = &command{
	name:    "sessions list",
	args:    "-key KEY -value VALUE (-hash-key-env VAR | -express-secret-env VAR) [-json] [flags]",
	summary: "list the live sessions whose value at a key equals a value",
	doc: `Lists the live sessions whose value at KEY equals VALUE (Store.ListSessions),
for example the sessions of a user who asks where they are signed in, the
most recently active first: each session's handle (for sessions end),
when it was created or last regenerated, when it was last active (to
within the application's Config.TouchInterval), when it expires, and the
client's IP and user agent (recorded only with Config.RecordClient). It
never prints session IDs. A time the table does not know prints as "-"
(JSON null): the creation of a session Node created, an expiry of
'infinity'.

Give -max-age and -browser-session-ttl when the application changes
Config.Options.MaxAge or Config.BrowserSessionTTL: the last activity of a
session is also read from its expiry minus its lifetime.

Without an index on KEY (Config.IndexKeys) it reads every row of the
table.

` + sessionsKeysDoc,
	flags: func(fs *flag.FlagSet, o *common) func(context.Context, io.Writer) error {
		var s sessionsOptions
		s.define(fs)
		asJSON := fs.Bool("json", false, "print a JSON array instead of text")
		fs.IntVar(&s.maxAge, "max-age", pgstore.DefaultMaxAge, "the application's Config.Options.MaxAge, in `seconds`")
		fs.DurationVar(&s.browserTTL, "browser-session-ttl", pgstore.DefaultBrowserSessionTTL, "the application's Config.BrowserSessionTTL (a `duration`)")
		return func(ctx context.Context, stdout io.Writer) error {
			st, value, err := s.open(ctx, o)
			if err != nil {
				return err
			}
			defer st.Close()
			infos, err := st.ListSessions(ctx, s.key, value, nil)
			if err != nil {
				return err
			}
			if *asJSON {
				return printSessionsJSON(stdout, infos)
			}
			return printSessions(stdout, infos)
		}
	},
}

var sessionsEndCommand = &command{
	name:    "sessions end",
	args:    "-key KEY -value VALUE -handle HANDLE (-hash-key-env VAR | -express-secret-env VAR) [flags]",
	summary: "end one of those sessions, named by the handle sessions list shows",
	doc: `Ends the session named by HANDLE (from sessions list), but only if its value
at KEY equals VALUE (Store.EndSession): a handle of another user's session
ends nothing. The session's cookie gives an empty session from then on, as
after a logout; in Express mode the tombstones keep Node from bringing it
back. It prints "ended 1 session", or fails (exit 1) when no live session
of that user has the handle.

To sign a user out everywhere, use "pgstore revoke" with the same -key and
-value: it ends all of the user's sessions and needs no key.

` + sessionsKeysDoc,
	flags: func(fs *flag.FlagSet, o *common) func(context.Context, io.Writer) error {
		var s sessionsOptions
		s.define(fs)
		var handle string
		fs.StringVar(&handle, "handle", "", "the session's `handle`, as sessions list printed it (required)")
		return func(ctx context.Context, stdout io.Writer) error {
			if handle == "" {
				return usageError{errors.New("-handle is required")}
			}
			st, value, err := s.open(ctx, o)
			if err != nil {
				return err
			}
			defer st.Close()
			ok, err := st.EndSession(ctx, s.key, value, handle)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no live session whose %s is %s has handle %q (ended already, or another user's)", s.key, s.value, handle)
			}
			fmt.Fprintln(stdout, "ended 1 session")
			return nil
		}
	},
}

// sessionsOptions are the flags the sessions commands share.
type sessionsOptions struct {
	key, value          string
	hashKeyEnv          string
	expressSecretEnv    string
	maxAge              int
	browserTTL          time.Duration
	hashKey, expressKey []byte
}

func (s *sessionsOptions) define(fs *flag.FlagSet) {
	fs.StringVar(&s.key, "key", "", "the session `key` that names the user, such as user_id (required)")
	fs.StringVar(&s.value, "value", "", "the user's `value` at the key: JSON when it parses as a string, number or boolean, else a string (required)")
	fs.StringVar(&s.hashKeyEnv, "hash-key-env", "", "the environment `variable` holding the application's first hash key (Config.KeyPairs[0]), used as is; prefixed hex: or base64: to decode it")
	fs.StringVar(&s.expressSecretEnv, "express-secret-env", "", "the environment `variable` holding the application's first Express secret (Config.ExpressSecrets[0])")
	s.maxAge = pgstore.DefaultMaxAge
	s.browserTTL = pgstore.DefaultBrowserSessionTTL
}

// check checks the flags and reads the key from the environment. It
// returns the value to select by.
func (s *sessionsOptions) check() (any, error) {
	switch {
	case s.key == "":
		return nil, usageError{errors.New("-key is required")}
	case s.value == "":
		return nil, usageError{errors.New("-value is required")}
	case s.hashKeyEnv == "" && s.expressSecretEnv == "":
		return nil, usageError{errors.New("-hash-key-env or -express-secret-env is required: handles are derived from the application's key")}
	case s.hashKeyEnv != "" && s.expressSecretEnv != "":
		return nil, usageError{errors.New("give -hash-key-env or -express-secret-env, not both")}
	case s.maxAge < 0:
		return nil, usageError{fmt.Errorf("-max-age %d: use 0 (browser-session cookies) or more", s.maxAge)}
	case s.browserTTL <= 0:
		return nil, usageError{fmt.Errorf("-browser-session-ttl %v: use a positive duration", s.browserTTL)}
	}
	value, err := revokeValue(s.value)
	if err != nil {
		return nil, usageError{err}
	}
	if s.expressSecretEnv != "" {
		secret := os.Getenv(s.expressSecretEnv)
		if secret == "" {
			return nil, usageError{fmt.Errorf("-express-secret-env: $%s is not set or empty", s.expressSecretEnv)}
		}
		s.expressKey = []byte(secret)
		return value, nil
	}
	// The variable's characters, unless a prefix says how the application
	// decodes them.
	prefix, name := "text:", s.hashKeyEnv
	for _, p := range []string{"hex:", "base64:"} {
		if strings.HasPrefix(name, p) {
			prefix, name = p, name[len(p):]
		}
	}
	text := os.Getenv(name)
	if text == "" {
		return nil, usageError{fmt.Errorf("-hash-key-env: $%s is not set or empty", name)}
	}
	key, err := parseKey(prefix + text)
	if err != nil {
		// Not the decoder's error, which may quote a character of the key.
		return nil, usageError{fmt.Errorf("-hash-key-env: $%s is not %s", name, strings.TrimSuffix(prefix, ":"))}
	}
	s.hashKey = key
	return value, nil
}

// open checks the flags, and opens the table with the application's key,
// so that the handles are the application's. It returns the store and the
// user's value.
func (s *sessionsOptions) open(ctx context.Context, o *common) (*pgstore.Store, any, error) {
	value, err := s.check()
	if err != nil {
		return nil, nil, err
	}
	opts := pgstore.DefaultOptions()
	opts.MaxAge = s.maxAge
	cfg := pgstore.Config{Options: opts, BrowserSessionTTL: s.browserTTL}
	if s.expressKey != nil {
		cfg.ExpressSecrets = []string{string(s.expressKey)}
	} else {
		cfg.KeyPairs = [][]byte{s.hashKey}
	}
	st, err := o.open(ctx, false, cfg)
	return st, value, err
}

// sessionJSON is one session in sessions list -json.
type sessionJSON struct {
	Handle     string     `json:"handle"`
	Created    *time.Time `json:"created"`
	LastActive *time.Time `json:"last_active"`
	Expires    *time.Time `json:"expires"`
	UserAgent  string     `json:"user_agent"`
	IP         string     `json:"ip"`
}

func printSessionsJSON(w io.Writer, infos []pgstore.SessionInfo) error {
	out := make([]sessionJSON, 0, len(infos))
	for _, in := range infos {
		out = append(out, sessionJSON{
			Handle: in.Handle, Created: timeOrNil(in.Created), LastActive: timeOrNil(in.LastActive),
			Expires: timeOrNil(in.Expires), UserAgent: in.UserAgent, IP: in.IP,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func printSessions(w io.Writer, infos []pgstore.SessionInfo) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintln(w, "no live sessions")
		return err
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tCREATED\tLAST ACTIVE\tEXPIRES\tIP\tUSER AGENT")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.Handle, when(in.Created), when(in.LastActive), when(in.Expires),
			orDash(printable(in.IP)), orDash(printable(in.UserAgent)))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable replaces what is not printable in a client's text (control
// characters, tabs, terminal escapes, bidirectional overrides) with "?":
// the user agent is whatever the client sent, and this goes to a
// terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
}
