// Package pgbouncer starts a throwaway PgBouncer in transaction pooling mode
// in front of a PostgreSQL server, for the tests (through internal/pgtest)
// that run pgstore behind a transaction-mode pooler. It is not part of
// pgstore's API, and it imports no test packages.
//
// The pooler is set up to make misrouting show rather than hide: each pool
// has PoolSize server connections, opened ahead of need and handed out
// round robin, so that consecutive transactions of one client connection
// land on different server connections, and session state that one
// transaction leaves behind (a named prepared statement, a session-level
// advisory lock, a SET) is missing in the next.
package pgbouncer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgsessions/pgstore/internal/ownerdir"
)

// PoolSize is the number of server connections of each pool (one per
// database and user) that a Bouncer opens and keeps, unless
// Options.PoolSize says otherwise.
const PoolSize = 3

// Options change how StartWith sets up a Bouncer. The zero value is
// Start's setup.
type Options struct {
	// PoolSize is the number of server connections of each pool, opened
	// ahead of need and handed out round robin. Default (0): PoolSize.
	PoolSize int
}

// dirPrefix starts the name of every Bouncer's directory.
const dirPrefix = "pgstore-pgbouncer-"

// Files in a Bouncer's directory.
const (
	configFile = "pgbouncer.ini"
	usersFile  = "users.txt"
	logFile    = "pgbouncer.log" // pgbouncer's log
	outFile    = "output.log"    // its stdout and stderr (and runuser's)
	pidFile    = "pgbouncer.pid"
)

// ErrNotInstalled means the pgbouncer binary was not found.
var ErrNotInstalled = errors.New("pgbouncer not found on PATH or in /usr/sbin (on Debian: apt-get install pgbouncer)")

// Bouncer is a running PgBouncer in transaction pooling mode, on 127.0.0.1
// and a free port, with trust authentication, that passes every database
// name through to one upstream server. Its configuration, log and PID file
// are in a temporary directory that Stop deletes.
//
// The process that starts a Bouncer holds a lock on a file in its directory
// until Stop, so that RemoveStale can tell a Bouncer whose owner died from
// one in use. Stop is safe for concurrent use; the other methods only read.
type Bouncer struct {
	dir            string
	port           int
	user, database string // for DSN: the upstream's
	runAs          string // the OS user pgbouncer runs as, when we are root
	poolSize       int    // server connections per pool
	cmd            *exec.Cmd
	pid            int      // pgbouncer's own process (cmd may be runuser)
	owner          *os.File // the locked owner file; nil where locks are not supported
	stopOnce       sync.Once
	stopErr        error
}

// binary finds the pgbouncer executable.
func binary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	// Debian installs it in /usr/sbin, which a user's PATH may lack.
	const debian = "/usr/sbin/pgbouncer"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", ErrNotInstalled
}

// Start starts a PgBouncer in front of the server that upstream (a URL or
// key=value DSN, as lib/pq and pgx take) names, and waits until a query
// through it answers. The pooler logs in to the upstream as the client's
// user, with the DSN's password for the DSN's user; it lets in the DSN's
// user, postgres, root and the current OS user without a password. Stop
// stops it.
func Start(upstream string) (*Bouncer, error) {
	return StartWith(upstream, Options{})
}

// StartWith is Start with options.
func StartWith(upstream string, opts Options) (*Bouncer, error) {
	if opts.PoolSize < 0 {
		return nil, fmt.Errorf("pgbouncer: Options.PoolSize %d is negative", opts.PoolSize)
	}
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	up, err := pgconn.ParseConfig(upstream)
	if err != nil {
		return nil, fmt.Errorf("parse the upstream DSN: %w", err)
	}
	b := &Bouncer{user: up.User, database: up.Database, poolSize: opts.PoolSize}
	if b.poolSize == 0 {
		b.poolSize = PoolSize
	}
	if b.runAs, err = serverUser(); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", dirPrefix); err != nil {
		return nil, err
	}
	// Lock before anything else, so that no directory of a live process is
	// ever without its lock for long; RemoveStale leaves lockless ones alone.
	if b.owner, err = ownerdir.Lock(b.dir); err != nil {
		os.RemoveAll(b.dir)
		return nil, fmt.Errorf("lock %s: %w", b.dir, err)
	}
	if b.runAs != "" {
		// pgbouncer writes its log and PID file here.
		if out, err := exec.Command("chown", b.runAs, b.dir).CombinedOutput(); err != nil {
			b.removeFiles()
			return nil, fmt.Errorf("chown %s: %v: %s", b.dir, err, out)
		}
	}
	if err := b.start(bin, up); err != nil {
		b.removeFiles()
		return nil, err
	}
	return b, nil
}

// serverUser is the OS user to run pgbouncer as: it refuses to run as root,
// so as root it is postgres; otherwise "" (ourselves).
func serverUser() (string, error) {
	if os.Geteuid() != 0 {
		return "", nil
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "", errors.New("running as root and there is no postgres user to run pgbouncer as (pgbouncer refuses root)")
	}
	return "postgres", nil
}

func (b *Bouncer) start(bin string, up *pgconn.Config) error {
	var err error
	if b.port, err = freePort(); err != nil {
		return err
	}
	if err := b.writeConfig(up); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(b.dir, outFile))
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	config := filepath.Join(b.dir, configFile)
	if b.runAs != "" {
		b.cmd = exec.Command("runuser", "-u", b.runAs, "--", bin, config)
	} else {
		b.cmd = exec.Command(bin, config)
	}
	// Files, not buffers, so that exec starts no goroutines to copy
	// output: they would outlive the tests' leak check.
	b.cmd.Stdout, b.cmd.Stderr, b.cmd.Dir = out, out, b.dir
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	if err := b.awaitReady(30 * time.Second); err != nil {
		if b.cmd.ProcessState == nil { // not yet reaped
			b.kill()
			_ = b.cmd.Wait()
		}
		return fmt.Errorf("pgbouncer: %w%s", err, b.logTail())
	}
	return nil
}

// writeConfig writes pgbouncer.ini and the auth file.
func (b *Bouncer) writeConfig(up *pgconn.Config) error {
	users := map[string]string{"postgres": "", "root": ""}
	if u, err := user.Current(); err == nil {
		users[u.Username] = ""
	}
	users[up.User] = up.Password // to log in to the upstream with
	var auth strings.Builder
	for name, password := range users {
		fmt.Fprintf(&auth, "%s %s\n", quote(name), quote(password))
	}
	// pgbouncer reads the auth file as postgres; only the owner may read
	// a password.
	if err := b.writeFile(usersFile, auth.String(), 0o600); err != nil {
		return err
	}
	host := up.Host
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	config := strings.Join([]string{
		"[databases]",
		// Any database name the client asks for, on the upstream, as the
		// client's user.
		fmt.Sprintf("* = host=%s port=%d", host, up.Port),
		"",
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		"listen_port = " + strconv.Itoa(b.port),
		"unix_socket_dir =", // none: nothing but TCP to clean up after
		"auth_type = trust",
		"auth_file = " + filepath.Join(b.dir, usersFile),
		"pool_mode = transaction",
		// A few server connections, all opened at once and used in turn
		// (FIFO rather than the default LIFO): consecutive transactions of
		// one client go to different servers even when the client is
		// alone, so state kept across them shows up as a failure.
		"default_pool_size = " + strconv.Itoa(b.poolSize),
		"min_pool_size = " + strconv.Itoa(b.poolSize),
		"reserve_pool_size = 0",
		"server_round_robin = 1",
		// The drivers' pools are unbounded; queued clients wait their turn.
		"max_client_conn = 500",
		// A client stuck waiting for a server fails after this, rather than
		// hanging the test run until its timeout.
		"query_wait_timeout = 60",
		// Startup parameters pgbouncer 1.18 does not track and the drivers
		// may send; anything else unknown is refused, so that a test never
		// silently loses a setting it asked for.
		"ignore_startup_parameters = extra_float_digits",
		"logfile = " + filepath.Join(b.dir, logFile),
		"pidfile = " + filepath.Join(b.dir, pidFile),
		"log_connections = 0",
		"log_disconnections = 0",
		"log_stats = 0",
		"",
	}, "\n")
	return b.writeFile(configFile, config, 0o644)
}

// quote quotes s for the auth file: in double quotes, with any double quote
// doubled.
func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// writeFile writes a file into the directory, owned by the user pgbouncer
// runs as.
func (b *Bouncer) writeFile(name, content string, perm os.FileMode) error {
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		return err
	}
	if b.runAs != "" {
		if out, err := exec.Command("chown", b.runAs, path).CombinedOutput(); err != nil {
			return fmt.Errorf("chown %s: %v: %s", path, err, out)
		}
	}
	return nil
}

// awaitReady waits until queries through the pooler answer, which also
// proves the upstream and the auth file right, or until pgbouncer exits or
// answers with an error, or timeout passes. It then learns pgbouncer's PID.
func (b *Bouncer) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if !ownerdir.ProcessAlive(b.cmd.Process.Pid) {
			err := b.cmd.Wait() // reaps it; returns at once
			return fmt.Errorf("exited while starting: %v", err)
		}
		last = b.ping()
		if last == nil {
			break
		}
		if errors.As(last, new(*pgconn.PgError)) {
			// pgbouncer answered, with an error (an unknown user, an
			// upstream that refuses): waiting will not change that.
			return last
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %v: %w", timeout, last)
		}
		<-tick.C
	}
	if b.runAs == "" {
		b.pid = b.cmd.Process.Pid
		return nil
	}
	// pgbouncer writes its PID file before it listens.
	pid, err := readPID(filepath.Join(b.dir, pidFile))
	if err != nil {
		return fmt.Errorf("read its PID: %w", err)
	}
	b.pid = pid
	return nil
}

// ping opens the pool's size in connections through the pooler, each in a
// transaction at once, so that the pool has all its server connections
// when Start returns (min_pool_size then keeps them): without that, the
// first tests would run on one server connection and hide misrouting.
func (b *Bouncer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var conns []*pgconn.PgConn
	defer func() {
		for _, conn := range conns {
			conn.Close(ctx)
		}
	}()
	for range b.poolSize {
		conn, err := pgconn.Connect(ctx, b.DSN())
		if err != nil {
			return err
		}
		conns = append(conns, conn)
		// While its transaction is open, a client holds its server
		// connection, so the next client needs another.
		if err := conn.Exec(ctx, "BEGIN; SELECT 1").Close(); err != nil {
			return err
		}
	}
	for _, conn := range conns {
		// Ended, not left open: pgbouncer closes a server connection whose
		// client left in a transaction.
		if err := conn.Exec(ctx, "ROLLBACK").Close(); err != nil {
			return err
		}
	}
	return nil
}

// readPID reads a PID file.
func readPID(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: no PID in %q", path, raw)
	}
	return pid, nil
}

// DSN is a URL for the upstream's database through the pooler, as the
// upstream DSN's user, for lib/pq and pgx. The drivers' settings for a
// transaction pooler are not in it: pgtest adds them per driver.
func (b *Bouncer) DSN() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(b.user),
		Host:     b.Addr(),
		Path:     "/" + b.database,
		RawQuery: "sslmode=disable&connect_timeout=5",
	}
	return u.String()
}

// Addr is the "host:port" the pooler listens on.
func (b *Bouncer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
}

// Dir is the Bouncer's directory.
func (b *Bouncer) Dir() string { return b.dir }

// PID is pgbouncer's process ID.
func (b *Bouncer) PID() int { return b.pid }

// Stop stops pgbouncer, which closes its connections at once, waits for it
// to exit, and deletes its directory. Later calls return the first call's
// result.
func (b *Bouncer) Stop() error {
	b.stopOnce.Do(func() {
		b.stopErr = b.stop()
		b.removeFiles()
	})
	return b.stopErr
}

func (b *Bouncer) stop() error {
	// SIGTERM is pgbouncer's immediate shutdown. Signal pgbouncer itself,
	// not runuser: runuser would pass it on, then wait two seconds
	// before it exits.
	exited := make(chan error, 1)
	if err := signal(b.pid, syscall.SIGTERM); err != nil {
		b.kill()
		_ = b.cmd.Wait()
		return fmt.Errorf("stop pgbouncer (PID %d): %w", b.pid, err)
	}
	go func() { exited <- b.cmd.Wait() }()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-timer.C:
		b.kill()
		<-exited
		return fmt.Errorf("pgbouncer (PID %d) did not exit within 10s of SIGTERM; killed it", b.pid)
	}
}

// kill ends pgbouncer and runuser at once; the caller reaps them.
func (b *Bouncer) kill() {
	pid := b.pid
	if pid == 0 && b.runAs != "" {
		// Killed, runuser would leave pgbouncer running.
		pid, _ = readPID(filepath.Join(b.dir, pidFile))
	}
	if pid != 0 {
		_ = signal(pid, os.Kill)
	}
	_ = b.cmd.Process.Kill()
}

// signal sends sig to the process pid.
func signal(pid int, sig os.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// removeFiles deletes the directory, then lets go of the owner lock: in the
// other order, RemoveStale could take a directory still being deleted.
func (b *Bouncer) removeFiles() {
	os.RemoveAll(b.dir)
	if b.owner != nil {
		b.owner.Close()
	}
}

// logTail returns the end of pgbouncer's output and log, for errors.
func (b *Bouncer) logTail() string {
	var s strings.Builder
	for _, name := range []string{outFile, logFile} {
		raw, err := os.ReadFile(filepath.Join(b.dir, name))
		if err != nil || len(raw) == 0 {
			continue
		}
		if len(raw) > 2000 {
			raw = raw[len(raw)-2000:]
		}
		fmt.Fprintf(&s, "\n%s:\n%s", name, strings.TrimSpace(string(raw)))
	}
	return s.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
