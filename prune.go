package pgstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"time"
)

// pruneBatch is how many rows one DELETE removes. Small batches keep each
// transaction short, so pruning a large backlog never holds many row locks
// or a long snapshot while requests are served.
const pruneBatch = 1000

// Prune deletes expired rows now and returns how many it deleted; in
// Express mode it then deletes expired tombstones, not counted. It works
// in batches through the expire index and skips rows that other
// transactions hold, so it can run beside the background pruner and other
// stores. Call it from cron (with Config.PruneInterval negative) if you
// prefer that to the background pruner.
func (st *Store) Prune(ctx context.Context) (int64, error) {
	if st.isClosed() {
		return 0, errClosed
	}
	return st.deleteExpired(ctx, st.db)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// pruneSQL deletes one batch of expired rows. The batch is picked through
// the expire index (ORDER BY expire makes that the plan even when the
// statement is prepared and planned generically, as pgx does), locked with
// SKIP LOCKED so concurrent pruners and requests never wait on each other,
// and deleted through the primary key as an array, never a join over the
// whole table.
//
// Expired means expired by the database's clock: the cutoff is never later
// than now() there, so an app server whose clock runs fast cannot delete
// sessions that are still alive.
func (s *settings) pruneSQL() string {
	t := s.qualifiedTable()
	tz := quoteLiteral(s.timeZone)
	return "DELETE FROM " + t + " WHERE sid = ANY(ARRAY(SELECT sid FROM " + t +
		" WHERE expire < LEAST(to_timestamp($1) AT TIME ZONE " + tz + ", " + s.dbNow + " AT TIME ZONE " + tz + ")" +
		" ORDER BY expire LIMIT $2 FOR UPDATE SKIP LOCKED))"
}

func (st *Store) deleteExpired(ctx context.Context, ex execer) (int64, error) {
	query := st.cfg.pruneSQL()
	// One cutoff for the whole round, so a round always ends: the
	// database's clock as estimated at its start (and never past the
	// database's own now(), which the statement also applies).
	cutoff := epoch(st.dbNow())
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("pgstore: prune: %w", err)
		}
		qctx, cancel := st.queryContext(ctx)
		res, err := ex.ExecContext(qctx, query, cutoff, pruneBatch)
		cancel()
		if err != nil {
			return total, fmt.Errorf("pgstore: prune: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("pgstore: prune: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, st.deleteExpiredTombstones(ctx, ex)
		}
	}
}

// startPruner starts the background goroutine. Its context and channels
// exist before it does, so Close never races with its start.
func (st *Store) startPruner(h hooks) {
	ctx, cancel := context.WithCancel(context.Background())
	st.pruneStop = cancel
	st.pruneDone = make(chan struct{})
	wait := h.pruneWait
	if wait == nil {
		wait = time.After
	}
	go st.pruneLoop(ctx, wait, h.pruned)
}

func (st *Store) pruneLoop(ctx context.Context, wait func(time.Duration) <-chan time.Time, report func(int64, error)) {
	defer close(st.pruneDone)
	table := st.cfg.qualifiedTable()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait(jitter(st.cfg.pruneInterval)):
		}
		start := time.Now()
		n, locked, err := st.pruneRound(ctx)
		switch {
		case ctx.Err() != nil:
			// Closing; the error (if any) is the cancellation.
		case err != nil:
			// Logged, then the loop waits a full interval: never a
			// tight retry loop against a failing database.
			st.log.ErrorContext(ctx, "pgstore: pruning expired sessions failed", "table", table, "deleted", n, "err", err)
		case !locked:
			st.log.DebugContext(ctx, "pgstore: another store is pruning this table; skipped", "table", table)
		default:
			st.log.InfoContext(ctx, "pgstore: pruned expired sessions", "table", table, "deleted", n,
				"duration", time.Since(start).Round(time.Millisecond))
		}
		if report != nil {
			report(n, err)
		}
	}
}

// jitter spreads waits between 50% and 150% of d, so that a fleet started
// together does not prune in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// pruneRound prunes unless another Store (in any process) on the same table
// is pruning: the session-level advisory lock lets one through and the
// others skip the round, so N instances never run N DELETEs over the same
// rows. locked reports whether this store got the lock.
func (st *Store) pruneRound(ctx context.Context) (n int64, locked bool, err error) {
	conn, err := st.db.Conn(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("pgstore: prune: %w", err)
	}
	defer conn.Close()
	key := st.cfg.lockKey("prune")
	qctx, cancel := st.queryContext(ctx)
	err = conn.QueryRowContext(qctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&locked)
	cancel()
	if err != nil {
		return 0, false, fmt.Errorf("pgstore: prune: lock: %w", err)
	}
	if !locked {
		return 0, false, nil
	}
	defer func() {
		// Unlock even when ctx is cancelled. If that fails, the lock would
		// live on in the pooled connection, so the connection is discarded
		// instead, which releases the lock with its server session.
		// The unlock can also "succeed" with false, when the statement ran
		// on another server session than the lock (a transaction-mode
		// pooler): discard the connection then too.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var unlocked bool
		if uerr := conn.QueryRowContext(uctx, "SELECT pg_advisory_unlock($1)", key).Scan(&unlocked); uerr != nil || !unlocked {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			st.log.WarnContext(ctx, "pgstore: could not release the prune lock; dropped its connection",
				"table", st.cfg.qualifiedTable(), "err", uerr)
		}
	}()
	n, err = st.deleteExpired(ctx, conn)
	return n, true, err
}
