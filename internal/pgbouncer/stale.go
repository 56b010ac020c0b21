package pgbouncer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ownerFile is the file in a Bouncer's directory that the process owning
// the Bouncer keeps locked (see lockOwner).
const ownerFile = "owner.lock"

// RemoveStale deletes the Bouncer directories in parent (os.TempDir() when
// "") whose owner process is gone without stopping them (killed, crashed),
// and kills the pgbouncer still running from such a directory. Directories
// of live processes, and those without an owner lock (being created), are
// left alone. It returns the directories it deleted.
func RemoveStale(parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, dir := range dirs {
		owner, stale := takeOwner(dir)
		if !stale {
			continue
		}
		err := removeStale(dir)
		owner.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("remove stale pgbouncer %s: %w", dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// removeStale kills the pgbouncer of a directory whose owner is gone, if it
// still runs, and deletes the directory. A pgbouncer it cannot kill keeps
// its files.
func removeStale(dir string) error {
	if pid, err := readPID(filepath.Join(dir, pidFile)); err == nil && processAlive(pid) && isPgbouncer(pid) {
		if err := signal(pid, os.Kill); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for processAlive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("pgbouncer (PID %d) still runs 10s after SIGKILL", pid)
			}
			<-tick.C
		}
	}
	return os.RemoveAll(dir)
}

// isPgbouncer reports whether the process pid runs pgbouncer, so that a
// PID reused since the PID file was written is left alone. Without /proc
// (not Linux) it cannot tell, and says yes.
func isPgbouncer(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		_, errSelf := os.Stat("/proc/self/comm")
		return errSelf != nil
	}
	return strings.TrimSpace(string(comm)) == "pgbouncer"
}
