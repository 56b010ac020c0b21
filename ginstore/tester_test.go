package ginstore_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gin-contrib/sessions"
	"github.com/gin-contrib/sessions/tester"

	"github.com/pgsessions/pgstore/ginstore"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// testerSuite is every test of gin-contrib/sessions' tester package, the
// checks its own stores (cookie, redis, postgres, ...) pass.
// TestTesterSuiteComplete keeps the list whole when the package grows.
var testerSuite = map[string]func(*testing.T, func(*testing.T) sessions.Store){
	"GetSet":    wrap(tester.GetSet),
	"DeleteKey": wrap(tester.DeleteKey),
	"Flashes":   wrap(tester.Flashes),
	"Clear":     wrap(tester.Clear),
	"Options":   wrap(tester.Options),
	"Many":      wrap(tester.Many),
}

// wrap turns a tester function, whose factory type is unexported, into one
// of a type this package can name.
func wrap[F ~func(*testing.T) sessions.Store](test func(*testing.T, F)) func(*testing.T, func(*testing.T) sessions.Store) {
	return func(t *testing.T, f func(*testing.T) sessions.Store) { test(t, F(f)) }
}

// The stores gin-contrib ships pass these; so must ours, on both drivers.
// The tester sends cookies to an httptest recorder, where pgstore's
// default Secure attribute makes no difference, so the store's defaults
// stand (Options replaces them in its own test, as a gin user would).
func TestTester(t *testing.T) {
	for _, driver := range pgtest.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			for _, name := range sortedKeys(testerSuite) {
				t.Run(name, func(t *testing.T) {
					testerSuite[name](t, func(t *testing.T) sessions.Store {
						st, _, _ := newTestStore(t, driver)
						return ginstore.New(st)
					})
				})
			}
		})
	}
}

// TestTesterSuiteComplete fails when the tester package exports a function
// testerSuite does not run.
func TestTesterSuiteComplete(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.Dir}}{{range .GoFiles}} {{.}}{{end}}`, "github.com/gin-contrib/sessions/tester").Output()
	if err != nil {
		t.Fatalf("go list the tester package: %v", err)
	}
	fields := strings.Fields(string(out))
	dir := fields[0]
	var exported []string
	for _, name := range fields[1:] {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.IsExported() {
				exported = append(exported, fn.Name.Name)
			}
		}
	}
	if len(exported) == 0 {
		t.Fatalf("no exported functions found in %s", dir)
	}
	for _, name := range exported {
		if _, ok := testerSuite[name]; !ok {
			t.Errorf("tester.%s is not in testerSuite: add it", name)
		}
	}
	t.Logf("tester exports %v", exported)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
