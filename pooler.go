package pgstore

import (
	"context"
	"fmt"

	"github.com/lib/pq"
)

// poolerProbe is the query whose preparation checkPooler looks for.
const poolerProbe = "SELECT $1::text /* pgstore: TransactionPooler check */"

// checkPooler is New's check, with Config.TransactionPooler, that the
// driver sends each statement in a way a transaction-mode pooler cannot
// break. The pooler may give each transaction (and each statement outside
// one) to another server connection, so the driver must neither name
// prepared statements, which live on one server connection, nor split a
// statement across round trips.
//
// Both checks run in one transaction, which the pooler keeps on one server
// connection.
func (st *Store) checkPooler(ctx context.Context) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgstore: check the driver for Config.TransactionPooler: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only; nothing to keep
	if _, isPQ := st.db.Driver().(*pq.Driver); isPQ {
		// lib/pq sends []byte parameters as binary data only with
		// binary_parameters=yes, and only then parses, binds and runs a
		// query in one round trip. Read as int4, the bytes "0007" are
		// 808464439 in binary and 7 in text.
		var n int64
		if err := tx.QueryRowContext(ctx, "SELECT $1::int4", []byte("0007")).Scan(&n); err != nil {
			return fmt.Errorf("pgstore: check the driver for Config.TransactionPooler: %w", err)
		}
		if n == 7 {
			return fmt.Errorf("%w: Config.TransactionPooler needs lib/pq's binary_parameters=yes in the DSN (Open adds it): "+
				"without it lib/pq parses and runs each query in two round trips, which the pooler may send to different servers", ErrConfig)
		}
	}
	var text string
	if err := tx.QueryRowContext(ctx, poolerProbe, "pgstore").Scan(&text); err != nil {
		return fmt.Errorf("pgstore: check the driver for Config.TransactionPooler: %w", err)
	}
	// Only the probe counts: the application's own prepared statements
	// may be on the connection. PgBouncer 1.21 and later, with
	// max_prepared_statements set, keep track of prepared statements
	// themselves, under names of their own.
	var named int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_statements
		WHERE NOT from_sql AND statement = $1 AND name NOT LIKE 'PGBOUNCER\_%'`, poolerProbe).Scan(&named)
	if err != nil {
		return fmt.Errorf("pgstore: check the driver for Config.TransactionPooler: %w", err)
	}
	if named > 0 {
		return fmt.Errorf("%w: Config.TransactionPooler: the driver names its prepared statements, and a transaction pooler sends the next "+
			"statement to another server connection, where the name is unknown. With pgx, add default_query_exec_mode=exec to the DSN "+
			"(or set ConnConfig.DefaultQueryExecMode to QueryExecModeExec); see docs/production.md", ErrConfig)
	}
	return nil
}
