package ginstore_test

import (
	"database/sql"
	"testing"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

var hashKey = []byte("ginstore test hash key, 32+ bytes long")

// newTestStore returns a pgstore.Store on a pool of driverName's, in a
// schema of its own, closed when t ends. The pruner is off.
func newTestStore(t testing.TB, driverName string) (*pgstore.Store, *sql.DB, string) {
	t.Helper()
	db := pgtest.Open(t, driverName, nil)
	schema := pgtest.Schema(t, db)
	st, err := pgstore.New(db, pgstore.Config{
		KeyPairs:      [][]byte{hashKey},
		SchemaName:    schema,
		PruneInterval: -1,
	})
	if err != nil {
		t.Fatalf("pgstore.New: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st, db, schema
}
