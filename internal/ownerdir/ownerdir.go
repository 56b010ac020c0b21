// Package ownerdir marks the temporary directories of the tests' own
// servers (throwaway PostgreSQL clusters, PgBouncers) with an owner lock,
// so that a later run can tell a directory whose owner died (killed,
// crashed) from one in use, and clean it up. It is not part of pgstore's
// API, and it imports no test packages.
package ownerdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// file is the file in an owned directory that the owning process keeps
// locked (see Lock).
const file = "owner.lock"

// RemoveStale calls remove for each directory in parent (os.TempDir() when
// "") whose name starts with prefix and whose owner is gone, holding the
// owner lock meanwhile, and returns the directories remove deleted.
// Directories of live owners, and those without an owner lock (being
// created), are left alone. what names such a directory in errors.
func RemoveStale(parent, prefix, what string, remove func(dir string) error) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(parent, prefix+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, dir := range dirs {
		owner, stale := take(dir)
		if !stale {
			continue
		}
		err := remove(dir)
		owner.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale %s %s: %w", what, dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}
