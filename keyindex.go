package pgstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The expression indexes of Config.IndexKeys. They only make selecting by
// a key cheap, so they never stop a store from starting: New looks them
// up, and a missing one is built in the background, concurrently, so that
// writes to the table go on. A build waits for every transaction open in
// the database when it starts, so it may take long; Close stops it, and
// the next store's build starts again.

// keyIndexName is the name New gives the expression index on key:
// <table>_<key>_idx, as docs/operations.md names it, or, when that is too
// long for PostgreSQL's 63 bytes or taken by another relation, <table>_
// and a hash of table and key.
func (s *settings) keyIndexName(key string, hashed bool) string {
	name := s.table + "_" + key + "_idx"
	if len(name) <= maxIdentLen && !hashed {
		return name
	}
	sum := sha256.Sum256([]byte(s.table + "\x00" + key))
	table := s.table
	for len(table) > maxIdentLen-22 || !utf8.ValidString(table) {
		table = table[:len(table)-1]
	}
	return table + "_" + hex.EncodeToString(sum[:8]) + "_idx"
}

// qualifiedIndex is an index name as SQL spells it: in the table's
// schema.
func (s *settings) qualifiedIndex(name string) string {
	if s.schema == "" {
		return quoteIdent(name)
	}
	return quoteIdent(s.schema) + "." + quoteIdent(name)
}

// keyIndexDDL creates the index ListSessions, EndSession and Revoke use for
// key under name, without blocking writes to the table while it is built.
func (s *settings) keyIndexDDL(key, name string) string {
	return "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + quoteIdent(name) + " ON " + s.qualifiedTable() +
		" (" + s.qualifiedSessText() + "(sess, " + quoteLiteral(key) + "))"
}

// keyIndexState is what the table has for a key.
type keyIndexState struct {
	name         string // the index with the key's expression, if any
	valid, found bool
}

// keyIndex looks up the table's index whose expression is the one the store
// selects key by, valid ones first.
func (st *Store) keyIndex(ctx context.Context, key string) (keyIndexState, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT c.relname, i.indisvalid, pg_get_expr(i.indexprs, i.indrelid)
	FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE i.indrelid = to_regclass($1) AND i.indexprs IS NOT NULL AND i.indpred IS NULL
	ORDER BY i.indisvalid DESC`, st.cfg.qualifiedTable())
	if err != nil {
		return keyIndexState{}, err
	}
	defer rows.Close()
	// How the server prints the call, whatever standard_conforming_strings
	// says: 'it''s' or E'a\\b', then ::text.
	wants := []string{
		sessTextFunc + "(sess, '" + strings.ReplaceAll(key, "'", "''") + "'::text)",
		sessTextFunc + "(sess, " + quoteLiteral(key) + "::text)",
	}
	for rows.Next() {
		var name, expr string
		var valid bool
		if err := rows.Scan(&name, &valid, &expr); err != nil {
			return keyIndexState{}, err
		}
		for _, want := range wants {
			if strings.HasSuffix(expr, want) && (len(expr) == len(want) || expr[len(expr)-len(want)-1] == '.') {
				return keyIndexState{name: name, valid: valid, found: true}, rows.Err()
			}
		}
	}
	return keyIndexState{}, rows.Err()
}

// checkKeyIndexes looks up the index of each of Config.IndexKeys, and
// returns the keys that have no valid one. With SkipCreateTable (or
// without the function the index calls) it only warns about them.
func (st *Store) checkKeyIndexes(ctx context.Context) ([]string, error) {
	var missing []string
	for _, key := range st.cfg.indexKeys {
		idx, err := st.keyIndex(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("pgstore: look up the index on %q: %w", key, err)
		}
		if idx.valid {
			continue
		}
		if st.cfg.skipCreateTable || st.sessTextErr != nil {
			st.log.WarnContext(ctx, "pgstore: a key in Config.IndexKeys has no index; selecting by it reads every row",
				"key", key, "create", st.cfg.keyIndexDDL(key, st.cfg.keyIndexName(key, false)))
			continue
		}
		missing = append(missing, key)
	}
	return missing, nil
}

// startIndexBuild builds the missing indexes in the background, until
// done or Close.
func (st *Store) startIndexBuild(keys []string) {
	ctx, cancel := context.WithCancel(context.Background())
	st.indexStop = cancel
	st.indexDone = make(chan struct{})
	go func() {
		defer close(st.indexDone)
		for _, key := range keys {
			start := time.Now()
			name, err := st.buildKeyIndex(ctx, key)
			switch {
			case ctx.Err() != nil:
				st.log.InfoContext(ctx, "pgstore: index build stopped by Close; the next store builds it", "key", key)
				return
			case err != nil:
				st.log.ErrorContext(ctx, "pgstore: could not build the index for a key in Config.IndexKeys; selecting by it reads every row",
					"key", key, "err", err)
			default:
				st.log.InfoContext(ctx, "pgstore: index ready", "key", key, "index", name,
					"duration", time.Since(start).Round(time.Millisecond))
			}
		}
	}()
}

// buildAttempts bounds how often a build starts again after one was
// interrupted: builds by stores starting at once can deadlock, and
// PostgreSQL then ends one of them, leaving its index invalid.
const buildAttempts = 5

// errInterruptedBuild means an invalid index that no one is building.
var errInterruptedBuild = errors.New("an invalid index that no one is building (an interrupted build)")

// buildKeyIndex builds the index on key, or waits for another process's
// build of it, and starts again, dropping the invalid index, when a build
// was interrupted. It returns the index's name.
func (st *Store) buildKeyIndex(ctx context.Context, key string) (string, error) {
	var err error
	for range buildAttempts {
		name, nerr := st.freeIndexName(ctx, key)
		if nerr != nil {
			return "", nerr
		}
		// An error here (a deadlock with another store's build, the
		// index made meanwhile) is judged by what the table has after.
		_, _ = st.db.ExecContext(ctx, st.cfg.keyIndexDDL(key, name))
		var idx keyIndexState
		if idx, err = st.awaitKeyIndex(ctx, key); !errors.Is(err, errInterruptedBuild) {
			return idx.name, err
		}
		// Only the invalid index on this table with the key's
		// expression: never another relation of the same name.
		if _, derr := st.db.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+st.cfg.qualifiedIndex(idx.name)); derr != nil {
			return "", fmt.Errorf("%w; dropping it: %w", err, derr)
		}
	}
	return "", err
}

// freeIndexName is the name to build key's index under: the plain one
// unless another relation has it.
func (st *Store) freeIndexName(ctx context.Context, key string) (string, error) {
	name := st.cfg.keyIndexName(key, false)
	var onTable sql.NullBool
	err := st.db.QueryRowContext(ctx, `SELECT i.indrelid = to_regclass($2) FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
	WHERE c.oid = to_regclass($1)`, st.cfg.qualifiedIndex(name), st.cfg.qualifiedTable()).Scan(&onTable)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return name, nil // free
	case err != nil:
		return "", err
	case onTable.Valid && onTable.Bool:
		return name, nil // this table's: IF NOT EXISTS keeps it, awaitKeyIndex judges it
	}
	return st.cfg.keyIndexName(key, true), nil
}

// awaitKeyIndex returns once the index on key is valid, waiting while
// someone builds it, or errInterruptedBuild for an invalid one no one is
// building.
func (st *Store) awaitKeyIndex(ctx context.Context, key string) (keyIndexState, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// A build leaves the progress view a moment before its last
	// transaction, which marks the index valid, commits: it counts as
	// interrupted only after several looks find no build.
	const looks = 10
	idle := 0
	for {
		idx, err := st.keyIndex(ctx, key)
		if err != nil || idx.valid {
			return idx, err
		}
		var building bool
		err = st.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE relid = to_regclass($1))`,
			st.cfg.qualifiedTable()).Scan(&building)
		if err != nil {
			return idx, err
		}
		if idle++; building {
			idle = 0
		}
		if idle >= looks {
			if !idx.found {
				return idx, errors.New("the index was not created")
			}
			return idx, fmt.Errorf("index %s: %w", idx.name, errInterruptedBuild)
		}
		select {
		case <-ctx.Done():
			return idx, ctx.Err()
		case <-tick.C:
		}
	}
}
