package pgstore

import (
	"context"
	"database/sql"
	"io"
	"time"
)

// TestHooks exposes the store's seams to the external test package.
type TestHooks struct {
	Now       func() time.Time
	DBNow     string // an SQL expression that replaces now() as the database's clock
	Rand      io.Reader
	PruneWait func(time.Duration) <-chan time.Time
	Pruned    func(n int64, err error)
}

// NewWithHooks is New with test seams.
func NewWithHooks(db *sql.DB, cfg Config, h TestHooks) (*Store, error) {
	return newStore(context.Background(), db, cfg, hooks{now: h.Now, dbNow: h.DBNow, rand: h.Rand, pruneWait: h.PruneWait, pruned: h.Pruned})
}

// PruneRound runs one background pruning round.
func (st *Store) PruneRound(ctx context.Context) (n int64, locked bool, err error) {
	return st.pruneRound(ctx)
}

// DDL returns the statements New runs to create the table.
func (st *Store) DDL() []string { return st.cfg.ddl() }

var (
	Jitter             = jitter
	DescribeDSN        = describeDSN
	LogID              = logID
	HashID             = hashID
	WithConnectTimeout = withConnectTimeout
	QuoteLiteral       = quoteLiteral
)

// SchemaName is the schema the store's table is in.
func (st *Store) SchemaName() string { return st.cfg.schema }

// LockKey is the advisory lock key the store uses for purpose.
func (st *Store) LockKey(purpose string) int64 { return st.cfg.lockKey(purpose) }

// PruneSQL is the statement the background pruner runs for one batch of
// expired rows: $1 the cutoff, $2 the batch size, $3 the lock key.
func (st *Store) PruneSQL() string { return st.cfg.pruneSQL(true) }

// RevokeSQL is the statement Revoke and RevokeOthers send for key.
func (st *Store) RevokeSQL(key string) string { return st.cfg.revokeSQL(key) }

// UserRowsSQL is the statement ListSessions and EndSession read a user's
// rows with.
func (st *Store) UserRowsSQL(key string) string { return st.cfg.userRowsSQL(key) }

// AwaitIndexBuild waits for the background build of Config.IndexKeys'
// indexes, if one was started.
func (st *Store) AwaitIndexBuild() {
	if st.indexDone != nil {
		<-st.indexDone
	}
}
