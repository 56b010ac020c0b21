package pgstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed" // tombstones.sql
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// tombstonesSQL creates what keeps a logout final in Express mode: the
// tombstone table, its trigger function and the two triggers on the
// sessions table. It is written for "public"."user_sessions" and TimeZone
// 'UTC'; tombstoneDDL puts the store's names in.
//
//go:embed tombstones.sql
var tombstonesSQL string

// tombstoneSuffix makes the name of the tombstone table, and of its
// trigger function, from the sessions table's.
const tombstoneSuffix = "_tombstones"

// tombstoneTriggers are the triggers tombstones.sql puts on the sessions
// table: one records deleted sessions, one undoes inserts of them.
var tombstoneTriggers = []string{"pgstore_tombstone_record", "pgstore_tombstone_check"}

// tombstones names the tombstone table of an Express-mode store. It is zero
// in native mode, where no other writer re-inserts deleted sessions.
type tombstones struct {
	schema string // the sessions table's schema, resolved through search_path when SchemaName is empty
	name   string // the tombstone table and its trigger function
}

func (tb tombstones) qualified() string { return quoteIdent(tb.schema) + "." + quoteIdent(tb.name) }

// tombstoneName is table + "_tombstones", shortened with a hash of table
// when that would pass PostgreSQL's identifier limit (the server would
// silently cut it, and two long table names could then share one).
func tombstoneName(table string) string {
	if len(table)+len(tombstoneSuffix) <= maxIdentLen {
		return table + tombstoneSuffix
	}
	sum := sha256.Sum256([]byte(table))
	tag := "_" + hex.EncodeToString(sum[:4])
	cut := maxIdentLen - len(tombstoneSuffix) - len(tag)
	for cut > 0 && !utf8.RuneStart(table[cut]) {
		cut--
	}
	return table[:cut] + tag + tombstoneSuffix
}

// tombstoneDDL returns the statements of tombstones.sql for this store's
// table in schema.
func (st *Store) tombstoneDDL(schema string) ([]string, error) {
	table := quoteIdent(schema) + "." + quoteIdent(st.cfg.table)
	tomb := tombstones{schema: schema, name: tombstoneName(st.cfg.table)}.qualified()
	// The names go inside dollar-quoted bodies, which a name holding the
	// quote's tag would end early.
	if strings.Contains(table+tomb, "$pgstore") {
		return nil, fmt.Errorf("%w: Config.TableName or SchemaName holds \"$pgstore\", which Express mode's tombstones.sql uses as a quote", ErrConfig)
	}
	r := strings.NewReplacer(
		`'"public"."user_sessions"'`, quoteLiteral(table),
		`"public"."user_sessions_tombstones"`, tomb,
		`"public"."user_sessions"`, table,
		`'UTC'`, quoteLiteral(st.cfg.timeZone),
	)
	var stmts []string
	var cur strings.Builder
	inBody := false
	for _, line := range strings.Split(tombstonesSQL, "\n") {
		trimmed := strings.TrimSpace(line)
		if !inBody && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		if strings.Count(line, "$pgstore")%2 == 1 {
			inBody = !inBody
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if !inBody && strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, r.Replace(strings.TrimSpace(cur.String())))
			cur.Reset()
		}
	}
	return stmts, nil
}

// ensureTombstones finds the tombstone table and triggers of an
// Express-mode store, creating them when missing (unless SkipCreateTable)
// under the same advisory lock as the table, so that many processes
// starting at once create them once.
func (st *Store) ensureTombstones(ctx context.Context) error {
	schema, complete, err := st.tombstonesExist(ctx, st.db)
	if err != nil {
		return err
	}
	st.tomb = tombstones{schema: schema, name: tombstoneName(st.cfg.table)}
	if complete {
		return nil
	}
	table := st.cfg.qualifiedTable()
	if st.cfg.skipCreateTable {
		return fmt.Errorf("pgstore: Config.SkipCreateTable is set and %s lacks the tombstones that make a logout final against Node's saves: "+
			"run tombstones.sql with \"public\".\"user_sessions_tombstones\" replaced by %s, \"public\".\"user_sessions\" by %s and 'UTC' by %s (see docs/express.md)",
			table, st.tomb.qualified(), quoteIdent(schema)+"."+quoteIdent(st.cfg.table), quoteLiteral(st.cfg.timeZone))
	}
	stmts, err := st.tombstoneDDL(schema)
	if err != nil {
		return err
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgstore: create tombstones for %s: %w", table, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", st.cfg.lockKey("create")); err != nil {
		return fmt.Errorf("pgstore: create tombstones for %s: lock: %w", table, err)
	}
	// Another process may have created them while we waited.
	if _, complete, err := st.tombstonesExist(ctx, tx); err != nil || complete {
		return err
	}
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgstore: create tombstones for %s (Express mode; run tombstones.sql as the table's owner, or set Config.SkipCreateTable and run it by hand): %w", table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgstore: create tombstones for %s: commit: %w", table, err)
	}
	st.log.InfoContext(ctx, "pgstore: created the tombstone table and triggers", "table", table, "tombstones", st.tomb.qualified())
	return nil
}

// tombstonesExist returns the schema the sessions table is in, and
// whether the tombstone table, its function and both triggers are there.
func (st *Store) tombstonesExist(ctx context.Context, q queryer) (schema string, complete bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT n.nspname,
	to_regclass(quote_ident(n.nspname) || '.' || quote_ident($2)) IS NOT NULL
	AND to_regprocedure(quote_ident(n.nspname) || '.' || quote_ident($2) || '()') IS NOT NULL
	AND (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname IN ($3, $4)) = 2
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
		st.cfg.qualifiedTable(), tombstoneName(st.cfg.table), tombstoneTriggers[0], tombstoneTriggers[1]).Scan(&schema, &complete)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("pgstore: look up table %s: it does not exist", st.cfg.qualifiedTable())
	} else if err != nil {
		err = fmt.Errorf("pgstore: look up tombstones of %s: %w", st.cfg.qualifiedTable(), err)
	}
	return schema, complete, err
}

// deleteExpiredTombstones deletes the tombstones whose hour has passed. The
// table holds an hour of deletions, so one statement over all of it is
// cheap.
func (st *Store) deleteExpiredTombstones(ctx context.Context) error {
	if st.tomb.name == "" {
		return nil
	}
	err := st.retry(ctx, func(ctx context.Context, on runner) error {
		_, err := on.ExecContext(ctx, "DELETE FROM "+st.tomb.qualified()+" WHERE expire < "+st.cfg.dbNow)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: prune tombstones: %w", err)
	}
	return nil
}
