// Package pgcluster starts throwaway PostgreSQL clusters and lists the local
// servers to try, for the tests (through internal/pgtest) and for the example
// app's development fallback. It is not part of pgstore's API, and it
// imports no test packages, so that a program may link it.
package pgcluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pgsessions/pgstore/internal/ownerdir"
)

// Cluster is a throwaway PostgreSQL cluster in a temporary directory, with
// trust authentication on 127.0.0.1 and a free port. Tests may stop and start
// it to simulate a database restart.
//
// The process that starts a cluster holds a lock on a file in its directory
// until Remove, so that RemoveStale can tell a cluster whose owner died
// (killed, crashed) from one in use.
type Cluster struct {
	dir, bin string
	port     int
	runAs    string   // the OS user the server runs as, when we are root
	owner    *os.File // the locked owner file; nil where locks are not supported
	settings []string // extra "name=value" server settings Start passes with -c
}

// dirPrefix starts the name of every cluster directory.
const dirPrefix = "pgstore-cluster-"

// binDir finds initdb and pg_ctl.
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Prefer the newest version.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

// ErrNoBinaries means the PostgreSQL server binaries are not installed.
var ErrNoBinaries = errors.New("initdb and pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")

// toolPath is the path of a PostgreSQL program: in bin, else in the
// directory bin's pg_ctl links to (bin may be a directory of links to some
// of the programs, as /usr/local/bin is on some systems), else bin's.
func toolPath(bin, tool string) string {
	path := filepath.Join(bin, tool)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if ctl, err := filepath.EvalSymlinks(filepath.Join(bin, "pg_ctl")); err == nil {
		if p := filepath.Join(filepath.Dir(ctl), tool); p != path {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return path
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartCluster creates and starts a new cluster. Remove stops it and deletes
// its files.
func StartCluster() (*Cluster, error) {
	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	if err := c.initdb(); err != nil {
		c.removeFiles()
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.removeFiles()
		return nil, err
	}
	return c, nil
}

// newCluster makes the directory of a cluster, locked and owned by the
// server's user, and picks its port. It neither creates the data directory
// nor starts a server.
func newCluster() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	runAs, err := serverUser()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, runAs: runAs}
	c.dir, err = os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	// Lock before anything else, so that no directory of a live process is
	// ever without its lock for long; RemoveStale leaves lockless ones alone.
	c.owner, err = ownerdir.Lock(c.dir)
	if err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("lock %s: %w", c.dir, err)
	}
	if c.runAs != "" {
		if out, err := exec.Command("chown", c.runAs, c.dir).CombinedOutput(); err != nil {
			c.removeFiles()
			return nil, fmt.Errorf("chown %s: %v: %s", c.dir, err, out)
		}
	}
	c.port, err = freePort()
	if err != nil {
		c.removeFiles()
		return nil, err
	}
	return c, nil
}

// initdb creates the data directory of a new, empty cluster.
func (c *Cluster) initdb() error {
	return c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
}

// serverUser is the OS user to run the server as: initdb refuses to run as
// root, so as root it is postgres; otherwise "" (ourselves).
func serverUser() (string, error) {
	if os.Geteuid() != 0 {
		return "", nil
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "", fmt.Errorf("running as root and there is no postgres user to run a cluster as")
	}
	return "postgres", nil
}

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(tool string, args ...string) error {
	path := toolPath(c.bin, tool)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", c.port, c.dir)
	for _, s := range c.settings {
		opts += " -c " + s
	}
	return c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start")
}

// Stop stops the server, ending every connection (fast shutdown).
func (c *Cluster) Stop() error {
	return c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
}

// Kill stops the server the way a crash would (immediate shutdown: no
// checkpoint, every connection cut), and waits until it is gone. Start
// brings it back, through crash recovery.
func (c *Cluster) Kill() error {
	return c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "60", "stop")
}

// Remove stops the server if it runs and deletes the cluster.
func (c *Cluster) Remove() {
	_ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	c.removeFiles()
}

// removeFiles deletes the directory, then lets go of the owner lock: in the
// other order, RemoveStale could take a directory still being deleted.
func (c *Cluster) removeFiles() {
	os.RemoveAll(c.dir)
	if c.owner != nil {
		c.owner.Close()
	}
}

// DSN is a lib/pq and pgx compatible URL for the cluster's postgres
// database.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
