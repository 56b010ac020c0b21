package ginstore_test

import (
	"testing"

	"github.com/gin-contrib/sessions"

	"github.com/pgsessions/pgstore/ginstore"
)

// foreignSession is a sessions.Session that is not gin-contrib's.
type foreignSession struct{ sessions.Session }

func TestUnwrapForeignSession(t *testing.T) {
	if gs, err := ginstore.Unwrap(foreignSession{}); err == nil || gs != nil {
		t.Fatalf("Unwrap(a session without a Session method) = %v, %v; want an error", gs, err)
	}
}
