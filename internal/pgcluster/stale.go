package pgcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgsessions/pgstore/internal/ownerdir"
)

// RemoveStale deletes the throwaway clusters in parent (os.TempDir() when
// "") whose owner process is gone without removing them: killed with
// SIGKILL, crashed, or stopped by a second Ctrl-C during its cleanup. A
// server still running in such a cluster is stopped first. Clusters of live
// processes, and directories without an owner lock (being created, or made by
// an older version), are left alone. It returns the directories it deleted.
func RemoveStale(parent string) ([]string, error) {
	return ownerdir.RemoveStale(parent, dirPrefix, "cluster", removeStale)
}

// removeStale stops the server of a cluster whose owner is gone, if it still
// runs, and deletes the directory. A server it cannot stop keeps its files.
func removeStale(dir string) error {
	c := &Cluster{dir: dir}
	if pid, ok := postmasterPID(c.data()); ok && ownerdir.ProcessAlive(pid) {
		var err error
		if c.bin, err = binDir(); err != nil {
			return err
		}
		if c.runAs, err = serverUser(); err != nil {
			return err
		}
		// A server that exited meanwhile makes pg_ctl fail: then there is
		// nothing to stop.
		if err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop"); err != nil && ownerdir.ProcessAlive(pid) {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// postmasterPID reads the server's PID from the first line of
// postmaster.pid, which exists while the server runs (and after a crash).
func postmasterPID(dataDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}
