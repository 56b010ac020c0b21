package pgstore_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgsessions/pgstore/internal/pgtest"
)

// TestOtherModules runs the tests of the repository's other modules (the
// example app, the benchmarks), which go test ./... does not reach: it stops
// at module boundaries, go.work or not. So the README's one test command,
// go test -race ./... at the root, tests every module. -race is passed on
// when this binary was built with it.
func TestOtherModules(t *testing.T) {
	if testing.Short() && !pgtest.InCI() {
		t.Skip("-short: the other modules' tests are not run (go test ./... in each module go.work lists; CI runs them)")
	}
	mods := workspaceModules(t)
	checkEveryModuleListed(t, mods)
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		// Stop in time to report the output rather than be killed.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	args := []string{"test"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./...")
	for _, dir := range mods {
		if dir == "." {
			continue // this module: the command that runs this test
		}
		t.Run(dir, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
			}
			t.Logf("go %s in %s:\n%s", strings.Join(args, " "), dir, out)
		})
	}
}

// workspaceModules returns the directories go.work uses, relative to the
// repository root (this package's directory).
func workspaceModules(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "work", "edit", "-json", "go.work").Output()
	if err != nil {
		t.Fatalf("go work edit -json go.work: %v", err)
	}
	var work struct{ Use []struct{ DiskPath string } }
	if err := json.Unmarshal(out, &work); err != nil {
		t.Fatalf("go work edit -json: %v\n%s", err, out)
	}
	var dirs []string
	for _, u := range work.Use {
		dirs = append(dirs, filepath.Clean(u.DiskPath))
	}
	if !slices.Contains(dirs, ".") || len(dirs) < 2 {
		t.Fatalf("go.work uses %q; want the library (.) and the other modules", dirs)
	}
	return dirs
}

// checkEveryModuleListed fails t when a go.mod in the repository belongs to
// a module go.work leaves out, whose tests would then never run.
func checkEveryModuleListed(t *testing.T, listed []string) {
	t.Helper()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" && !slices.Contains(listed, filepath.Dir(path)) {
			t.Errorf("%s is not in go.work: its tests would not run; add its directory to go.work's use list", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
