package pgstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed" // schema.sql
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// schemaSQL is the one source of truth for the table's shape. New runs it
// with the names replaced; users may run it by hand.
//
//go:embed schema.sql
var schemaSQL string

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are
// silently truncated by the server.
const maxIdentLen = 63

// quoteIdent quotes a PostgreSQL identifier. Names are never spliced in raw.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// quoteLiteral quotes a string literal so that it reads the same whether
// standard_conforming_strings is on or off (a server, role or connection
// may turn it off): a string with a backslash takes the E'...' form, in which
// backslashes are escapes under either setting, with each one doubled.
func quoteLiteral(s string) string {
	q := `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
	if strings.ContainsRune(s, '\\') {
		q = `E` + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// ddlNames are the spellings in schema.sql that ddl replaces. The
// constraint and index lose their fixed names so that PostgreSQL picks
// free ones (t_pkey, t_expire_idx, with a number added on a clash): no
// custom table can then collide with another table's constraint or index
// in the same schema, as connect-pg-simple's fixed "session_pkey" does.
// schema.sql spells the names PostgreSQL picks for the default table, so
// there New creates what schema.sql says (TestSchemaSQLNamesMatchNew).
var ddlNames = []string{
	`CONSTRAINT "user_sessions_pkey" PRIMARY KEY`, `PRIMARY KEY`,
	`CREATE INDEX IF NOT EXISTS "user_sessions_expire_idx" ON`, `CREATE INDEX ON`,
}

// ddl returns the statements that create the table described by s. They
// run only inside ensureTable's locked transaction, after it has seen that
// the table does not exist; the IF NOT EXISTS kept from schema.sql is
// harmless there. The function Revoke reads sess through is not among
// them: it belongs to the schema, not the table (see sessTextDDL).
func (s *settings) ddl() []string {
	var stmts []string
	for _, stmt := range s.schemaStatements() {
		if !s.isSessTextDDL(stmt) {
			stmts = append(stmts, stmt)
		}
	}
	return stmts
}

// schemaStatements splits schema.sql into statements, names replaced. A
// statement ends with a line ending in ";" outside a $$-quoted body.
func (s *settings) schemaStatements() []string {
	r := strings.NewReplacer(append(ddlNames, `"user_sessions"`, s.qualifiedTable(),
		`"`+sessTextFunc+`"`, s.qualifiedSessText())...)
	var stmts []string
	var cur strings.Builder
	inBody := false
	for _, line := range strings.Split(schemaSQL, "\n") {
		if !inBody && strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.Count(line, "$$")%2 == 1 {
			inBody = !inBody
		}
		if !inBody && strings.HasSuffix(strings.TrimSpace(line), ";") {
			stmts = append(stmts, r.Replace(strings.TrimSpace(cur.String())))
			cur.Reset()
		}
	}
	return stmts
}

func (s *settings) qualifiedTable() string {
	if s.schema == "" {
		return quoteIdent(s.table)
	}
	return quoteIdent(s.schema) + "." + quoteIdent(s.table)
}

// lockKey derives a 64-bit advisory lock key for purpose on this table, so
// stores of different tables never wait on each other.
func (s *settings) lockKey(purpose string) int64 {
	sum := sha256.Sum256([]byte("pgstore\x00" + purpose + "\x00" + s.schema + "\x00" + s.table))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// ensureTable creates the table and its expire index unless it exists.
//
// Creation is serialized with a transaction-scoped advisory lock: when many
// processes start at once, one creates the table and the others wait, then
// see it. A role without CREATE privilege works as long as the table exists,
// because nothing is attempted then.
func (st *Store) ensureTable(ctx context.Context) error {
	exists, err := st.tableExists(ctx, st.db)
	if err != nil || exists {
		return err
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgstore: create table %s: %w", st.cfg.qualifiedTable(), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", st.cfg.lockKey("create")); err != nil {
		return fmt.Errorf("pgstore: create table %s: lock: %w", st.cfg.qualifiedTable(), err)
	}
	// Another process may have created it while we waited.
	if exists, err := st.tableExists(ctx, tx); err != nil || exists {
		return err
	}
	for _, stmt := range st.cfg.ddl() {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgstore: create table %s (set Config.SkipCreateTable and run schema.sql if the role may not create tables): %w", st.cfg.qualifiedTable(), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgstore: create table %s: commit: %w", st.cfg.qualifiedTable(), err)
	}
	st.log.InfoContext(ctx, "pgstore: created sessions table", "table", st.cfg.qualifiedTable())
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tableExists reports whether the table exists, resolving an unqualified
// name through search_path as the store's queries will.
func (st *Store) tableExists(ctx context.Context, q queryer) (bool, error) {
	var kind sql.NullString
	err := q.QueryRowContext(ctx, "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", st.cfg.qualifiedTable()).Scan(&kind)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("pgstore: look up table %s: %w", st.cfg.qualifiedTable(), err)
	case kind.String != "r" && kind.String != "p":
		return false, fmt.Errorf("pgstore: %s exists but is not a table (relkind %q)", st.cfg.qualifiedTable(), kind.String)
	}
	return true, nil
}

// checkExpireIndex warns when the table has no index led by expire: the
// pruner walks it (the load reads by sid alone).
func (st *Store) checkExpireIndex(ctx context.Context) error {
	var ok bool
	err := st.db.QueryRowContext(ctx, `SELECT EXISTS (
	SELECT 1 FROM pg_index i
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
	WHERE i.indrelid = to_regclass($1) AND a.attname = 'expire')`, st.cfg.qualifiedTable()).Scan(&ok)
	if err != nil {
		return fmt.Errorf("pgstore: check table %s: %w", st.cfg.qualifiedTable(), err)
	}
	if !ok {
		st.log.WarnContext(ctx, "pgstore: the sessions table has no index on expire; pruning will scan the whole table",
			"table", st.cfg.qualifiedTable())
	}
	return nil
}
