package pgstore

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
)

// Stats counts what a Store did since it was created, for operators to
// graph (docs/operations.md shows an export to Prometheus and
// OpenTelemetry). Every field only grows.
type Stats struct {
	// Loads counts rows looked up by Get, one per request whose cookie
	// verified, whether the row was found or not.
	Loads uint64
	// Inserts counts sessions written under a new ID: new sessions saved
	// and sessions moved by Regenerate.
	Inserts uint64
	// Updates counts rows written again by Save: changed values, or an
	// expiry moved by the touch.
	Updates uint64
	// SkippedWrites counts Saves that wrote nothing because nothing had
	// changed and the stored expiry was recent enough (the lazy touch).
	SkippedWrites uint64
	// Deletes counts sessions ended by Save with a negative MaxAge.
	Deletes uint64
	// Revoked counts sessions deleted by Revoke, RevokeOthers and
	// EndSession.
	Revoked uint64
	// PruneRounds counts pruning rounds: the background pruner's, taken
	// or skipped because another store held the lock, and calls of Prune.
	PruneRounds uint64
	// PrunedRows counts expired rows the pruning rounds deleted.
	PrunedRows uint64
	// Retries counts statements run again on another connection after a
	// connection error or a read-only server.
	Retries uint64
	// Errors counts the database errors the store returned, by kind.
	Errors ErrorStats
}

// ErrorStats counts database errors by kind. A call that retried and then
// succeeded counts no error.
type ErrorStats struct {
	// Connection counts calls that failed because no connection to a
	// writable server could be had: the database was down, restarting or
	// failing over, after the retries.
	Connection uint64
	// Timeout counts calls cut short by Config.QueryTimeout or the
	// caller's context.
	Timeout uint64
	// Corrupt counts rows Get could not read (ErrCorrupt).
	Corrupt uint64
	// Other counts every other error from the database.
	Other uint64
}

// Stats returns the store's counters.
func (st *Store) Stats() Stats {
	c := &st.stats
	return Stats{
		Loads:         c.loads.Load(),
		Inserts:       c.inserts.Load(),
		Updates:       c.updates.Load(),
		SkippedWrites: c.skippedWrites.Load(),
		Deletes:       c.deletes.Load(),
		Revoked:       c.revoked.Load(),
		PruneRounds:   c.pruneRounds.Load(),
		PrunedRows:    c.prunedRows.Load(),
		Retries:       c.retries.Load(),
		Errors: ErrorStats{
			Connection: c.errConnection.Load(),
			Timeout:    c.errTimeout.Load(),
			Corrupt:    c.errCorrupt.Load(),
			Other:      c.errOther.Load(),
		},
	}
}

// counters are Stats as the store keeps them.
type counters struct {
	loads, inserts, updates, skippedWrites, deletes, revoked atomic.Uint64
	pruneRounds, prunedRows, retries                         atomic.Uint64
	errConnection, errTimeout, errCorrupt, errOther          atomic.Uint64
}

// countError counts a database error the store is about to return.
func (c *counters) countError(err error) {
	switch {
	case errors.Is(err, sql.ErrNoRows) || errors.Is(err, ErrSessionNotFound) || sqlState(err) == "40001":
		// Not a failure: a missing row, a race the caller handles, a
		// serialization failure Revoke retries.
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		c.errTimeout.Add(1)
	case retryable(err):
		c.errConnection.Add(1)
	default:
		c.errOther.Add(1)
	}
}
