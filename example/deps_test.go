package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The example binary links no test support: its throwaway-cluster fallback
// comes from internal/pgcluster, not internal/pgtest, which imports testing
// and pgx. (go list reports the program's own imports, not its tests'.)
func TestBinaryLinksNoTestPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, dep := range deps {
		if dep == "testing" || strings.HasPrefix(dep, "testing/") ||
			strings.HasPrefix(dep, "github.com/jackc/pgx") || strings.HasSuffix(dep, "/internal/pgtest") {
			t.Errorf("the example binary links %s", dep)
		}
	}
}
