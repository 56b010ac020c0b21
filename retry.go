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
)

// errQueryTimeout is the cause of a query cancelled by Config.QueryTimeout.
// It wraps context.DeadlineExceeded, so callers can test for either.
var errQueryTimeout = fmt.Errorf("query took longer than Config.QueryTimeout: %w", context.DeadlineExceeded)

// attempts is how often a statement is tried when the connection it ran on
// turns out to be dead, as every pooled connection is after a database
// restart or failover. Every statement the store sends is safe to repeat.
const attempts = 3

// retry runs op, each attempt bounded by Config.QueryTimeout, and repeats it
// on a fresh connection while it fails with a connection error.
func (st *Store) retry(ctx context.Context, op func(context.Context) error) error {
	var err error
	for i := 0; i < attempts; i++ {
		qctx, cancel := st.queryContext(ctx)
		err = op(qctx)
		timedOut := qctx.Err() != nil
		if err != nil && context.Cause(qctx) == errQueryTimeout {
			err = fmt.Errorf("%w (%v): %w", errQueryTimeout, st.cfg.queryTimeout, err)
		}
		cancel()
		if err == nil || timedOut || !isConnError(err) {
			return err
		}
	}
	return err
}

// retryInsert is retry for an INSERT under a fresh random ID: if an attempt
// whose connection died had in fact committed, the retry meets its own row
// as a unique violation, which means success (no other session can hold a
// 192- or 256-bit random ID).
func (st *Store) retryInsert(ctx context.Context, op func(context.Context) error) error {
	retried := false
	return st.retry(ctx, func(ctx context.Context) error {
		err := op(ctx)
		if retried && sqlState(err) == "23505" {
			return nil
		}
		retried = true
		return err
	})
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
