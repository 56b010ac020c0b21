package pgbouncer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgsessions/pgstore/internal/ownerdir"
)

// RemoveStale deletes the Bouncer directories in parent (os.TempDir() when
// "") whose owner process is gone without stopping them (killed, crashed),
// and kills the pgbouncer still running from such a directory. Directories
// of live processes, and those without an owner lock (being created), are
// left alone. It returns the directories it deleted.
func RemoveStale(parent string) ([]string, error) {
	return ownerdir.RemoveStale(parent, dirPrefix, "pgbouncer", removeStale)
}

// removeStale kills the pgbouncer of a directory whose owner is gone, if it
// still runs, and deletes the directory. A pgbouncer it cannot kill keeps
// its files.
func removeStale(dir string) error {
	if pid, err := readPID(filepath.Join(dir, pidFile)); err == nil && ownerdir.ProcessAlive(pid) && isPgbouncer(pid) {
		if err := signal(pid, os.Kill); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for ownerdir.ProcessAlive(pid) {
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
