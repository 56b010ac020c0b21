package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// sessTextFunc is the SQL function through which Revoke reads a key of
// sess: sess ->> key, except that it never fails on a document holding
// \u0000 or half a surrogate pair (schema.sql says how). It lives in the
// table's schema and is shared by every table there.
const sessTextFunc = "pgstore_sess_text"

// qualifiedSessText is the function's name as the store's SQL spells it:
// in Config.SchemaName when that is set, else found through search_path
// like the table.
func (s *settings) qualifiedSessText() string {
	if s.schema == "" {
		return quoteIdent(sessTextFunc)
	}
	return quoteIdent(s.schema) + "." + quoteIdent(sessTextFunc)
}

// sessTextDDL is schema.sql's statement that creates the function.
func (s *settings) sessTextDDL() string {
	for _, stmt := range s.schemaStatements() {
		if s.isSessTextDDL(stmt) {
			return stmt
		}
	}
	panic("pgstore: schema.sql does not create " + sessTextFunc)
}

func (s *settings) isSessTextDDL(stmt string) bool {
	return strings.HasPrefix(stmt, "CREATE OR REPLACE FUNCTION "+s.qualifiedSessText()+"(")
}

// sessTextLockKey serializes creating the function in s's schema. It is
// not the table's lock: stores of different tables in one schema share the
// function, and two of them creating it at once would collide.
func (s *settings) sessTextLockKey() int64 {
	sum := sha256.Sum256([]byte("pgstore\x00" + sessTextFunc + "\x00" + s.schema))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// ensureSessText creates the function unless it exists, whether or not
// New created the table: a table made by an earlier version has none. With
// SkipCreateTable it only checks, and says what to run when it is missing.
func (st *Store) ensureSessText(ctx context.Context) error {
	name := st.cfg.qualifiedSessText()
	if ok, err := st.sessTextExists(ctx, st.db); err != nil || ok {
		return err
	}
	if st.cfg.skipCreateTable {
		return fmt.Errorf("pgstore: function %s(json, text), which Revoke needs, does not exist and Config.SkipCreateTable is set: "+
			"run schema.sql's CREATE OR REPLACE FUNCTION %s in the table's schema (rerunning all of schema.sql is harmless)", name, name)
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgstore: create function %s: %w", name, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", st.cfg.sessTextLockKey()); err != nil {
		return fmt.Errorf("pgstore: create function %s: lock: %w", name, err)
	}
	// Another process may have created it while we waited.
	if ok, err := st.sessTextExists(ctx, tx); err != nil || ok {
		return err
	}
	if _, err := tx.ExecContext(ctx, st.cfg.sessTextDDL()); err != nil {
		return fmt.Errorf("pgstore: create function %s (run schema.sql's CREATE OR REPLACE FUNCTION %s as a role that may create functions in the schema): %w",
			name, name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgstore: create function %s: commit: %w", name, err)
	}
	st.log.InfoContext(ctx, "pgstore: created function", "function", name)
	return nil
}

func (st *Store) sessTextExists(ctx context.Context, q queryer) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, "SELECT to_regprocedure($1) IS NOT NULL", st.cfg.qualifiedSessText()+"(json, text)").Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("pgstore: look up function %s: %w", st.cfg.qualifiedSessText(), err)
	}
	return ok, nil
}
