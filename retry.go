package pgstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// errQueryTimeout is the cause of a query cancelled by Config.QueryTimeout.
// It wraps context.DeadlineExceeded, so callers can test for either.
var errQueryTimeout = fmt.Errorf("query took longer than Config.QueryTimeout: %w", context.DeadlineExceeded)

// Retries after a connection error. The first retries follow each other at
// once, since every pooled connection may be dead (after a restart or a
// failover each fails at once); later ones wait, from retryBackoff doubling
// up to retryMaxBackoff, so that they outlast a short restart. All of them
// together are bounded by Config.QueryTimeout, and without one by
// retryMaxWaits waits.
const (
	retryBackoff    = 10 * time.Millisecond
	retryMaxBackoff = 500 * time.Millisecond
	retryMaxWaits   = 10
)

// retry runs op, bounded by Config.QueryTimeout, and runs it again while it
// fails with a connection error or on a read-only server (SQLSTATE 25006:
// a connection left on a node that was demoted in a failover). Every
// statement the store sends is safe to repeat.
//
// The first attempt runs on the pool. Each retry checks out a connection
// of its own and drops it from the pool when it fails, so that a dead or
// read-only connection is tried once, never again: after as many retries
// as the pool held connections, a fresh connection has been tried.
func (st *Store) retry(ctx context.Context, op func(context.Context, runner) error) error {
	qctx, cancel := st.queryContext(ctx)
	defer cancel()
	err := op(qctx, st.db)
	if retryable(err) && qctx.Err() == nil {
		err = st.retryFresh(qctx, op, err)
	}
	if err == nil {
		return nil
	}
	switch {
	case context.Cause(qctx) == errQueryTimeout:
		err = fmt.Errorf("%w (%v): %w", errQueryTimeout, st.cfg.queryTimeout, err)
	case qctx.Err() != nil && !errors.Is(err, qctx.Err()):
		// The caller's context ended; lib/pq reports only the server's
		// "canceling statement" (57014).
		err = fmt.Errorf("%w: %w", qctx.Err(), err)
	case !st.cfg.transactionPooler && preparedStatementGone(err):
		err = fmt.Errorf("%w%s", err, poolerHint)
	}
	st.stats.countError(err)
	return err
}

// retryFresh is retry's loop after the first attempt failed with err.
func (st *Store) retryFresh(ctx context.Context, op func(context.Context, runner) error, err error) error {
	atOnce := st.db.Stats().OpenConnections + 1
	wait := retryBackoff
	for attempt := 1; ; attempt++ {
		if attempt > atOnce {
			if attempt-atOnce > retryMaxWaits {
				return err
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			wait = min(2*wait, retryMaxBackoff)
		}
		st.stats.retries.Add(1)
		conn, cerr := st.db.Conn(ctx)
		if cerr != nil {
			if !retryable(cerr) || ctx.Err() != nil {
				return cerr
			}
			err = cerr
			continue
		}
		err = op(ctx, conn)
		if sqlState(err) == "25006" {
			// A read-only server: end the connection's server session,
			// so that a pool below database/sql (pgxpool, through
			// stdlib.OpenDBFromPool) sees it closed and drops it too.
			_, _ = conn.ExecContext(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
		}
		if retryable(err) {
			// Drop it: database/sql keeps a connection whose driver did
			// not report it broken (pgx after 57P01, any driver on a
			// read-only server).
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// poolerHint ends errors that mean the store's prepared statements are not
// where it prepared them.
const poolerHint = " (the prepared statements are not where the store prepared them: behind a transaction-mode pooler such as PgBouncer, set Config.TransactionPooler)"

// preparedStatementGone reports whether err is one of the errors a
// transaction-mode pooler causes for prepared statements: missing (26000),
// already there under the name (42P05), or another statement under the
// name (08P01, bind message supplies N parameters).
func preparedStatementGone(err error) bool {
	switch sqlState(err) {
	case "26000", "42P05":
		return true
	case "08P01":
		return strings.Contains(err.Error(), "bind message supplies")
	}
	return false
}

// retryable reports whether an attempt that failed with err may succeed on
// another connection: the connection failed, the server is read-only (a
// node demoted in a failover), or it refused a new connection for want of
// slots (53300: max_connections or the role's CONNECTION LIMIT, which a
// wait may free).
func retryable(err error) bool {
	if err == nil {
		return false
	}
	code := sqlState(err)
	return isConnError(err) || code == "25006" || code == "53300"
}

// insertOwn is a write under a fresh random ID: a unique violation on it
// can only be the store's own earlier attempt, which committed but whose
// reply was lost with its connection (database/sql re-runs a statement
// whose connection broke, within one attempt), so it means success. No
// other session can hold a 192- or 256-bit random ID.
func insertOwn(err error) error {
	if sqlState(err) == "23505" {
		return nil
	}
	return err
}

// sqlState returns the SQLSTATE code of a server error from lib/pq or pgx,
// or "".
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// isConnError reports whether err means the connection failed, rather than
// the statement.
func isConnError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	code := sqlState(err)
	// Class 08 is connection exceptions; 57P01-57P03 are shutdowns and
	// "the database system is starting up".
	// 08P01 (protocol violation) will not heal by retrying.
	return strings.HasPrefix(code, "08") && code != "08P01" || code == "57P01" || code == "57P02" || code == "57P03"
}
