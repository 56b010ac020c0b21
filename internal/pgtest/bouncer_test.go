package pgtest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgsessions/pgstore/internal/pgbouncer"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// A pooler test without pgbouncer installed skips, saying why, outside CI
// and fails under CI; a pgbouncer that is installed but does not start
// fails everywhere.
func TestBouncerFailed(t *testing.T) {
	missing := fmt.Errorf("start: %w", pgbouncer.ErrNotInstalled)
	broken := errors.New("pgbouncer: exited while starting: exit status 1")
	for _, tc := range []struct {
		ci   string
		err  error
		fail bool
	}{
		{"", missing, false},
		{"false", missing, false},
		{"true", missing, true},
		{"", broken, true},
		{"true", broken, true},
	} {
		t.Run(fmt.Sprintf("CI=%q/%v", tc.ci, tc.err), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			v := &verdict{}
			pgtest.BouncerFailed(v, "postgres://root:secret@127.0.0.1:5432/test", tc.err)
			if (v.failed != "") == (v.skipped != "") {
				t.Fatalf("failed %q, skipped %q: want exactly one", v.failed, v.skipped)
			}
			if (v.failed != "") != tc.fail {
				t.Errorf("failed %q, skipped %q; want a failure: %v", v.failed, v.skipped, tc.fail)
			}
			msg := v.failed + v.skipped
			if !strings.Contains(msg, tc.err.Error()) {
				t.Errorf("message %q does not give the reason %q", msg, tc.err)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("message %q shows the password", msg)
			}
		})
	}
}
