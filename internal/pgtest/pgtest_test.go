package pgtest_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/pgsessions/pgstore/internal/pgcluster"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// verdict records how SkipOrFail ended a test, without ending the real one.
type verdict struct {
	testing.TB // nil: any other method panics, so SkipOrFail may use only these
	failed     string
	skipped    string
}

func (v *verdict) Helper() {}

func (v *verdict) Fatalf(format string, args ...any) { v.failed = fmt.Sprintf(format, args...) }

func (v *verdict) Skipf(format string, args ...any) { v.skipped = fmt.Sprintf(format, args...) }

// A database test without a server fails under CI and when DATABASE_URL
// names the server, and skips, saying why, only elsewhere.
func TestSkipOrFail(t *testing.T) {
	// What find returns when nothing answers on localhost and no cluster
	// starts, and when DATABASE_URL does not answer.
	local := errors.New("no PostgreSQL server found; set DATABASE_URL ...")
	named := fmt.Errorf("%w (postgres://root@127.0.0.1:1/test): connection refused", pgtest.ErrDatabaseURL)
	for _, tc := range []struct {
		ci   string
		err  error
		fail bool
	}{
		{"", local, false},
		{"0", local, false},
		{"false", local, false},
		{"FALSE", local, false},
		{"1", local, true},
		{"true", local, true},
		{"yes", local, true},
		{"", named, true},
		{"false", named, true},
		{"1", named, true},
		{"1", fmt.Errorf("start a throwaway cluster: %w", pgcluster.ErrNoBinaries), true},
		{"", fmt.Errorf("start a throwaway cluster: %w", pgcluster.ErrNoBinaries), false},
	} {
		t.Run(fmt.Sprintf("CI=%q/%v", tc.ci, tc.err), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			if got := pgtest.InCI(); got != (tc.ci != "" && tc.ci != "0" && !strings.EqualFold(tc.ci, "false")) {
				t.Errorf("InCI() = %v", got)
			}
			v := &verdict{}
			pgtest.SkipOrFail(v, tc.err)
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
			if tc.fail && !strings.Contains(msg, "CI") && !strings.Contains(msg, "DATABASE_URL") {
				t.Errorf("failure %q does not say why it is not a skip", msg)
			}
		})
	}
}

// deadAddr is an address nothing listens on, the same for every run of the
// test in this process (go test -count), since DSN answers once per process.
var deadAddr = sync.OnceValues(func() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close() // nothing listens there once it returns
	return l.Addr().String(), nil
})

// DSN's error for a DATABASE_URL that does not answer wraps ErrDatabaseURL,
// which is what makes SkipOrFail fail outside CI. (DSN looks once per
// process; no other test in this package calls it.)
func TestDeadDatabaseURL(t *testing.T) {
	addr, err := deadAddr()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", "postgres://nobody@"+addr+"/none?sslmode=disable")
	dsn, err := pgtest.DSN()
	if !errors.Is(err, pgtest.ErrDatabaseURL) {
		t.Fatalf("DSN() = %q, %v; want an error wrapping ErrDatabaseURL", dsn, err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("%v does not name the server tried", err)
	}
}
