package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// keyIndexName is the name of the expression index on key:
// <table>_<key>_idx, as docs/operations.md names it, or with a hash of the
// key when that would pass PostgreSQL's 63 bytes.
func (s *settings) keyIndexName(key string) string {
	name := s.table + "_" + key + "_idx"
	if len(name) > maxIdentLen {
		sum := sha256.Sum256([]byte(key))
		table := s.table
		if len(table) > maxIdentLen-22 {
			table = table[:maxIdentLen-22]
		}
		name = table + "_" + hex.EncodeToString(sum[:8]) + "_idx"
	}
	return name
}

// keyIndexDDL creates the index Revoke, ListSessions and EndSession use
// for key, without blocking writes to the table while it is built.
func (s *settings) keyIndexDDL(key string) string {
	return "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + quoteIdent(s.keyIndexName(key)) + " ON " + s.qualifiedTable() +
		" (" + s.qualifiedSessText() + "(sess, " + quoteLiteral(key) + "))"
}

// ensureKeyIndexes creates the index for each of Config.IndexKeys that has
// none, or, with SkipCreateTable, warns about it. Lookups are bounded by
// qctx; a build only by ctx, New's own context: on a large table it can
// take longer than a query should, and an interrupted build leaves an
// invalid index behind.
func (st *Store) ensureKeyIndexes(ctx, qctx context.Context) error {
	for _, key := range st.cfg.indexKeys {
		ok, err := st.keyIndexExists(qctx, key, true)
		if err != nil || ok {
			if err != nil {
				return fmt.Errorf("pgstore: look up the index on %q: %w", key, err)
			}
			continue
		}
		if st.cfg.skipCreateTable || st.sessTextErr != nil {
			st.log.WarnContext(ctx, "pgstore: a key in Config.IndexKeys has no index; selecting by it reads every row",
				"key", key, "create", st.cfg.keyIndexDDL(key))
			continue
		}
		if _, err := st.db.ExecContext(ctx, st.cfg.keyIndexDDL(key)); err != nil {
			// Another process may be building it.
			if ok, lerr := st.keyIndexExists(qctx, key, false); lerr == nil && ok {
				continue
			}
			return fmt.Errorf("pgstore: create the index on %q (set Config.SkipCreateTable and run the statement from docs/sessions.md if the role may not): %w", key, err)
		}
		if ok, err := st.keyIndexExists(qctx, key, true); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("index %s exists but is invalid (an interrupted build): drop it, and New builds it again", st.cfg.keyIndexName(key))
			}
			return fmt.Errorf("pgstore: create the index on %q: %w", key, err)
		}
		st.log.InfoContext(ctx, "pgstore: created index", "key", key, "index", st.cfg.keyIndexName(key))
	}
	return nil
}

// keyIndexExists reports whether an index on the table has the expression
// the store selects key by; only a valid one (built) when valid is set.
func (st *Store) keyIndexExists(ctx context.Context, key string, valid bool) (bool, error) {
	var ok bool
	err := st.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i,
	LATERAL (SELECT pg_get_expr(i.indexprs, i.indrelid) AS expr, '`+sessTextFunc+`(sess, ' || quote_literal($2) || '::text)' AS want) e
	WHERE i.indrelid = to_regclass($1) AND (i.indisvalid OR NOT $3) AND right(e.expr, length(e.want)) = e.want)`,
		st.cfg.qualifiedTable(), key, valid).Scan(&ok)
	return ok, err
}
