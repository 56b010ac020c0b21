package pgstore

import (
	"context"
	"database/sql"
	"fmt"
)

// statement is one of the store's queries: its text, and the prepared
// statement when the store prepares its queries.
//
// Prepared, a query costs one round trip with every driver. Behind a
// transaction-mode pooler (Config.TransactionPooler) nothing is prepared:
// a named prepared statement lives on one server connection, and the
// pooler sends the next transaction to any of them. The query then goes
// as a one-shot statement, which is one round trip too with the driver
// settings docs/production.md gives (lib/pq's binary_parameters, pgx's
// exec mode).
type statement struct {
	text     string
	prepared *sql.Stmt
}

// statements are the queries requests run, built (and prepared) once in
// New.
type statements struct {
	load, insert, update, updateValues, delete, regenerate, exists statement
}

func (s *statements) all() []*statement {
	return []*statement{&s.load, &s.insert, &s.update, &s.updateValues, &s.delete, &s.regenerate, &s.exists}
}

// build writes the queries' texts.
func (s *statements) build(cfg *settings) {
	t := cfg.qualifiedTable()
	tz := quoteLiteral(cfg.timeZone)
	// expire is a timestamp without time zone holding wall-clock time in
	// TimeZone. Epoch seconds go in and out through to_timestamp and
	// AT TIME ZONE, so the connection's own TimeZone never matters.
	at := func(param string) string { return "(to_timestamp(" + param + ") AT TIME ZONE " + tz + ")" }
	// Whether a row is alive is judged by the database's clock, never by
	// the app server's, so that servers whose clocks disagree agree on it.
	aliveSQL := "expire >= (" + cfg.dbNow + " AT TIME ZONE " + tz + ")"

	// load returns the row whatever its expiry, with the database's clock
	// in the same statement: the caller judges expiry by that clock, the
	// query binds one parameter, and the store learns the clock's offset
	// on every load.
	s.load.text = "SELECT sess, date_part('epoch', expire AT TIME ZONE " + tz + "), date_part('epoch', " +
		cfg.dbNow + ") FROM " + t + " WHERE sid = $1"
	s.insert.text = "INSERT INTO " + t + " (sid, sess, expire) VALUES ($1, $2, " + at("$3") + ")"
	s.update.text = "UPDATE " + t + " SET sess = $2, expire = " + at("$3") + " WHERE sid = $1 AND " + aliveSQL
	s.updateValues.text = "UPDATE " + t + " SET sess = $2 WHERE sid = $1 AND " + aliveSQL
	s.delete.text = "DELETE FROM " + t + " WHERE sid = $1"
	// One statement moves a session to a new ID: the old row goes and the
	// new one comes in the same round trip and transaction, and only if
	// the old row was there and alive, so that a session logged out,
	// revoked or expired meanwhile is never brought back. Of two
	// concurrent Regenerates the second waits on the row lock, then finds
	// nothing to delete and inserts nothing.
	s.regenerate.text = "WITH gone AS (DELETE FROM " + t + " WHERE sid = $1 AND " + aliveSQL +
		" RETURNING 1) INSERT INTO " + t + " (sid, sess, expire) SELECT $2, $3, " + at("$4") + " FROM gone"
	s.exists.text = "SELECT EXISTS (SELECT 1 FROM " + t + " WHERE sid = $1)"
}

// prepare prepares every query on db.
func (s *statements) prepare(ctx context.Context, db *sql.DB) error {
	for _, q := range s.all() {
		stmt, err := db.PrepareContext(ctx, q.text)
		if err != nil {
			hint := ""
			if preparedStatementGone(err) {
				hint = poolerHint
			}
			return fmt.Errorf("pgstore: prepare statements: %w%s", err, hint)
		}
		q.prepared = stmt
	}
	return nil
}

// close releases the prepared statements.
func (s *statements) close() {
	for _, q := range s.all() {
		if q.prepared != nil {
			q.prepared.Close()
		}
	}
}

// runner is where a statement runs: the pool (*sql.DB) or the one
// connection (*sql.Conn) a retry checked out.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// exec runs q on on, through its prepared statement when on is the pool
// the statement was prepared on.
func (q *statement) exec(ctx context.Context, on runner, args ...any) (sql.Result, error) {
	if _, pool := on.(*sql.DB); pool && q.prepared != nil {
		return q.prepared.ExecContext(ctx, args...)
	}
	return on.ExecContext(ctx, q.text, args...)
}

// queryRow is exec for a query that returns one row.
func (q *statement) queryRow(ctx context.Context, on runner, args ...any) *sql.Row {
	if _, pool := on.(*sql.DB); pool && q.prepared != nil {
		return q.prepared.QueryRowContext(ctx, args...)
	}
	return on.QueryRowContext(ctx, q.text, args...)
}
