package pgstore

import (
	"context"
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
	st.stats.pruneRounds.Add(1)
	n, _, err := st.deleteExpired(ctx, false)
	return n, err
}

// pruneSQL deletes one batch of expired rows and returns whether it held
// the prune lock and how many rows it deleted. The batch is picked through
// the expire index (ORDER BY expire makes that the plan even when the
// statement is prepared and planned generically, as pgx does), locked with
// SKIP LOCKED so concurrent pruners and requests never wait on each other,
// and deleted through the primary key as an array, never a join over the
// whole table.
//
// With lock, the statement first tries the table's prune lock ($3), an
// advisory lock that lasts the statement's own transaction, and deletes
// nothing when another store holds it. The lock is taken and released
// within the one statement, so a transaction-mode pooler cannot separate
// it from the DELETE, and no lock can outlive a lost connection.
//
// Expired means expired by the database's clock: the cutoff is never later
// than now() there, so an app server whose clock runs fast cannot delete
// sessions that are still alive.
func (s *settings) pruneSQL(lock bool) string {
	t := s.qualifiedTable()
	tz := quoteLiteral(s.timeZone)
	held := "true"
	if lock {
		held = "pg_try_advisory_xact_lock($3)"
	}
	return "WITH lock AS (SELECT " + held + " AS held), gone AS (DELETE FROM " + t +
		" WHERE (SELECT held FROM lock) AND sid = ANY(ARRAY(SELECT sid FROM " + t +
		" WHERE expire < LEAST(to_timestamp($1) AT TIME ZONE " + tz + ", " + s.dbNow + " AT TIME ZONE " + tz + ")" +
		" ORDER BY expire LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING 1)" +
		" SELECT (SELECT held FROM lock), (SELECT count(*) FROM gone)"
}

// deleteExpired deletes expired rows in batches. With lock, each batch
// takes the prune lock, and the round stops (locked false if at the first
// batch) when another store holds it.
func (st *Store) deleteExpired(ctx context.Context, lock bool) (total int64, locked bool, err error) {
	query := st.cfg.pruneSQL(lock)
	args := []any{0.0, pruneBatch}
	if lock {
		args = append(args, st.cfg.lockKey("prune"))
	}
	// One cutoff for the whole round, so a round always ends: the
	// database's clock as estimated at its start (and never past the
	// database's own now(), which the statement also applies).
	args[0] = epoch(st.dbNow())
	for batch := 0; ; batch++ {
		if err := ctx.Err(); err != nil {
			return total, locked, fmt.Errorf("pgstore: prune: %w", err)
		}
		var held bool
		var n int64
		err := st.retry(ctx, func(ctx context.Context, on runner) error {
			return on.QueryRowContext(ctx, query, args...).Scan(&held, &n)
		})
		if err != nil {
			return total, locked, fmt.Errorf("pgstore: prune: %w", err)
		}
		if !held {
			// Another store prunes this table, from its first batch or
			// from here on.
			return total, locked, nil
		}
		locked = true
		total += n
		st.stats.prunedRows.Add(uint64(n))
		if n < pruneBatch {
			return total, locked, st.deleteExpiredTombstones(ctx)
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

// pruneRound prunes unless another Store (in any process) on the same
// table is pruning: the prune lock lets one through and the others skip
// the round, so N instances never run N DELETEs over the same rows. locked
// reports whether this store got the lock.
func (st *Store) pruneRound(ctx context.Context) (n int64, locked bool, err error) {
	st.stats.pruneRounds.Add(1)
	return st.deleteExpired(ctx, true)
}
