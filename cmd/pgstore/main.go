// Command pgstore looks after a pgstore sessions table: it copies sessions
// from antonlindstrom/pgstore, deletes expired rows, revokes sessions by a
// value, lists and ends a user's sessions, and reports what the table
// holds.
//
//	go install github.com/pgsessions/pgstore/cmd/pgstore@latest
//	pgstore stats -dsn "$DATABASE_URL"
//
// Run pgstore help, or pgstore help COMMAND, for the details, and see
// docs/migration.md for migrate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/gorilla/securecookie"
	"github.com/lib/pq"

	"github.com/pgsessions/pgstore"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a fatal error, or some rows failed
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name, args, summary, doc string
	// flags defines the command's own flags on fs; the returned function
	// runs the command once they are parsed.
	flags func(fs *flag.FlagSet, c *common) func(ctx context.Context, stdout io.Writer) error
}

var commands = []*command{migrateCommand, pruneCommand, revokeCommand, sessionsListCommand, sessionsEndCommand, statsCommand}

// groups are the words that begin two-word commands ("sessions list").
var groups = map[string]string{
	"sessions": "a user's sessions, for support staff (docs/sessions.md)",
}

const usageText = `Usage: pgstore COMMAND [flags]

Looks after a pgstore sessions table.

Commands:
`

const usageTail = `
Every command takes -dsn (default $DATABASE_URL), -schema, -table and
-time-zone, which mean what Config.SchemaName, Config.TableName and
Config.TimeZone mean to the application. Run "pgstore help COMMAND" for a
command's flags.

Exit status: 0 on success, 1 on an error (for migrate: also when some rows
failed), 2 for bad flags or an unknown command.
`

func usage(w io.Writer) {
	fmt.Fprint(w, usageText)
	listCommands(w, "")
	fmt.Fprint(w, usageTail)
}

// listCommands lists the commands whose names begin with prefix.
func listCommands(w io.Writer, prefix string) {
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		if strings.HasPrefix(c.name, prefix) {
			fmt.Fprintf(w, "  %-*s %s\n", width+2, c.name, c.summary)
		}
	}
}

// groupUsage prints the commands of a group.
func groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: pgstore %s COMMAND [flags]\n\nThe commands on %s:\n", group, groups[group])
	listCommands(w, group+" ")
	fmt.Fprintf(w, "\nRun \"pgstore help %s COMMAND\" for a command's flags.\n", group)
	if group == "sessions" {
		fmt.Fprint(w, "To sign a user out everywhere, use \"pgstore revoke\" with the same -key and -value.\n")
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, args := args[0], args[1:]
	help := false
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) == 0 {
			usage(stdout)
			return exitOK
		}
		name, args, help = args[0], args[1:], true
	}
	if _, ok := groups[name]; ok {
		switch {
		case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
			name, args = name+" "+args[0], args[1:]
		case help || len(args) > 0 && isHelpFlag(args[0]):
			groupUsage(stdout, name)
			return exitOK
		default:
			groupUsage(stderr, name)
			return exitUsage
		}
	}
	if help {
		args = []string{"-h"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "pgstore: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

// common are the flags every command takes.
type common struct {
	dsn, schema, table, timeZone string
}

func (c *command) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	// Asked-for help goes to stdout, so that it pipes into a pager; the
	// usage printed with a flag error goes to stderr.
	out := stderr
	for _, a := range args {
		if isHelpFlag(a) {
			out = stdout
		}
	}
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pgstore %s %s\n\n%s\nFlags:\n", c.name, c.args, c.doc)
		fs.PrintDefaults()
	}
	var o common
	fs.StringVar(&o.dsn, "dsn", "", "the PostgreSQL `URL or key=value string` (default: $DATABASE_URL)")
	fs.StringVar(&o.schema, "schema", "", "the `schema` of the sessions table (Config.SchemaName); default: the connection's search_path")
	fs.StringVar(&o.table, "table", pgstore.DefaultTableName, "the sessions `table` (Config.TableName)")
	fs.StringVar(&o.timeZone, "time-zone", pgstore.DefaultTimeZone, "the `zone` of the expire column (Config.TimeZone)")
	exec := c.flags(fs, &o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package has printed the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pgstore %s: unexpected argument %q\n", c.name, fs.Arg(0))
		return exitUsage
	}
	if o.dsn == "" {
		o.dsn = os.Getenv("DATABASE_URL")
	}
	err := exec(ctx, stdout)
	var u usageError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(stderr, "pgstore %s: %v\n", c.name, err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "pgstore %s: %v\n", c.name, err)
		return exitFailed
	}
	return exitOK
}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// usageError is an error in the flags that parsing alone does not catch.
type usageError struct{ error }

// open opens a Store on the table the flags name, with the background
// pruner off. Unless create is set, the table must exist. Unless cfg has
// keys (the application's, for session handles), the key is a throwaway:
// New needs one, and nothing here signs a cookie.
func (o *common) open(ctx context.Context, create bool, cfg pgstore.Config) (*pgstore.Store, error) {
	if len(cfg.KeyPairs) == 0 && len(cfg.ExpressSecrets) == 0 {
		cfg.KeyPairs = [][]byte{securecookie.GenerateRandomKey(32)}
	}
	if cfg.TableName == "" {
		cfg.TableName = o.table
	}
	if cfg.SchemaName == "" {
		cfg.SchemaName = o.schema
	}
	cfg.TimeZone = o.timeZone
	cfg.PruneInterval = -1
	cfg.SkipCreateTable = !create
	st, err := pgstore.OpenContext(ctx, o.dsn, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (see -dsn, -schema and -table)", err)
	}
	return st, nil
}

// qualified quotes a table name for SQL, with its schema when there is one.
func qualified(schema, table string) string {
	if schema == "" {
		return pq.QuoteIdentifier(table)
	}
	return pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(table)
}
