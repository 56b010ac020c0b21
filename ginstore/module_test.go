package ginstore_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// pgstore users who do not use gin never download it: the library's go.mod
// does not require gin, and its packages do not import it.
func TestLibraryDoesNotRequireGin(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, gin := range []string{"github.com/gin-gonic/", "github.com/gin-contrib/"} {
		if strings.Contains(string(mod), gin) {
			t.Errorf("the library's go.mod requires %s...", gin)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/pgsessions/pgstore").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/gin-") {
			t.Errorf("the library imports %s", dep)
		}
	}
}
