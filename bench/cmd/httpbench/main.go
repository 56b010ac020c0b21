// Command httpbench compares pgstore at the HTTP level with a raw-SQL
// floor, the Express stack it replaces and alexedwards/scs, on one
// PostgreSQL, one server after another. See ../../README.md.
//
// Usage, from the bench directory:
//
//	go run ./cmd/httpbench [-duration 10s] [-rounds 1] [-profile] [-servers pgstore,pgstore-open,floor,express,scs]
//
// The servers pgstore-pooler and floor-pooler, not run by default, reach
// PostgreSQL through a PgBouncer in transaction mode that httpbench starts.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/pgsessions/pgstore/internal/pgbouncer"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serveMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "httpbench serve:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpbench: FAIL:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	dsn        string
	duration   time.Duration
	warmup     time.Duration
	nodeWarmup time.Duration
	conns      int
	sessions   int
	pool       int
	servers    []string
	rounds     int
	profile    bool
	benchDir   string
	resultsDir string
}

func parseFlags() (options, error) {
	o := options{}
	defaultDSN := os.Getenv("DATABASE_URL")
	if defaultDSN == "" {
		defaultDSN = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	}
	var servers string
	flag.StringVar(&o.dsn, "dsn", defaultDSN, "PostgreSQL URL (default $DATABASE_URL, else the local test database)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per server and workload")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up before each measured run (Go servers)")
	flag.DurationVar(&o.nodeWarmup, "node-warmup", 6*time.Second, "warm-up before each measured run of the Express server (Node's JIT needs longer)")
	flag.IntVar(&o.conns, "conns", 32, "concurrent keep-alive connections of the load generator")
	flag.IntVar(&o.sessions, "sessions", 500, "sessions created per server; each request picks one at random")
	flag.IntVar(&o.pool, "pool", 10, "max connections of every server's pool (database/sql for Go, pg's Pool for Express) but pgstore-open's, which keeps Open's; 10 is pg's default")
	flag.StringVar(&servers, "servers", "pgstore,pgstore-open,floor,express,scs", "servers to run, in order")
	flag.IntVar(&o.rounds, "rounds", 1, "how many times to run the whole sequence of servers; with more than one, the report adds medians")
	flag.BoolVar(&o.profile, "profile", false, "take a CPU profile of each Go server during each measured run of the first round and print its top entries")
	flag.StringVar(&o.benchDir, "bench-dir", ".", "the bench directory (holding express/ and results/)")
	flag.StringVar(&o.resultsDir, "results", "", "where to write the report (default BENCH-DIR/results)")
	flag.Parse()
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	for _, s := range strings.Split(servers, ",") {
		if _, ok := serverSpecs[s]; !ok {
			return o, fmt.Errorf("-servers: unknown server %q (have pgstore, pgstore-open, floor, express, scs, pgstore-pooler, floor-pooler)", s)
		}
		o.servers = append(o.servers, s)
	}
	if o.duration < time.Second || o.conns < 1 || o.sessions < 1 || o.pool < 1 || o.rounds < 1 {
		return o, errors.New("-duration must be at least 1s; -conns, -sessions, -pool and -rounds at least 1")
	}
	if _, err := os.Stat(filepath.Join(o.benchDir, "express", "server.js")); err != nil {
		return o, fmt.Errorf("run from the bench directory or pass -bench-dir: %w", err)
	}
	if o.resultsDir == "" {
		o.resultsDir = filepath.Join(o.benchDir, "results")
	}
	return o, nil
}

// serverSpec says how to set up and start one server.
type serverSpec struct {
	title  string // for the report
	schema string
	table  string // schema-qualified, for ANALYZE
	ddl    string // run after the schema is created; %s is the schema
	node   bool
	pooler bool // through a PgBouncer in transaction mode that httpbench starts
}

const userSessionsDDL = `CREATE TABLE %[1]s.user_sessions (
  sid varchar NOT NULL COLLATE "default" PRIMARY KEY,
  sess json NOT NULL,
  expire timestamp(6) NOT NULL
);
CREATE INDEX ON %[1]s.user_sessions (expire);`

// The table from scs's postgresstore README.
const scsDDL = `CREATE TABLE %[1]s.sessions (
  token TEXT PRIMARY KEY,
  data BYTEA NOT NULL,
  expiry TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expiry_idx ON %[1]s.sessions (expiry);`

var serverSpecs = map[string]serverSpec{
	"pgstore":      {title: "pgstore (New, tuned pool)", schema: "httpbench_pgstore", table: "user_sessions"}, // pgstore.New creates it
	"pgstore-open": {title: "pgstore (Open, its own pool)", schema: "httpbench_pgstore_open", table: "user_sessions"},
	"floor":        {title: "raw-SQL floor", schema: "httpbench_floor", table: "user_sessions", ddl: userSessionsDDL},
	"express":      {title: "Express + connect-pg-simple", schema: "httpbench_express", table: "user_sessions", ddl: userSessionsDDL, node: true},
	"scs":          {title: "scs + postgresstore", schema: "httpbench_scs", table: "sessions", ddl: scsDDL},
	// The same two through PgBouncer: pgstore with Config.TransactionPooler,
	// the floor's statements as one-shot queries.
	"pgstore-pooler": {title: "pgstore via PgBouncer", schema: "httpbench_pgstore_pooler", table: "user_sessions", pooler: true},
	"floor-pooler":   {title: "raw-SQL floor via PgBouncer", schema: "httpbench_floor_pooler", table: "user_sessions", ddl: userSessionsDDL, pooler: true},
}

// poolerParams are the driver settings for a transaction pooler: lib/pq
// sends a query with parameters in one round trip (parse, bind, execute)
// only with binary_parameters=yes; without it the pooler may send the
// parse and the execute to different server connections.
var poolerParams = map[string]string{"binary_parameters": "yes"}

// result is one (server, workload) row of the report.
type result struct {
	round            int
	server, workload string
	requests         int64
	errors           int64
	errorLog         []string
	rps              float64
	p50, p99         time.Duration
	tripsPerReq      float64 // < 0: unknown
	cpu              cpuUse
	profile          string // file, when profiled
}

func run(ctx context.Context) error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	started := time.Now().UTC()
	stamp := started.Format("20060102T150405Z")

	admin, err := sql.Open("postgres", withParams(o.dsn, map[string]string{"application_name": "httpbench-driver"}))
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to PostgreSQL (%s): %w", o.dsn, err)
	}

	withNode, withPooler := false, false
	for _, s := range o.servers {
		withNode = withNode || serverSpecs[s].node
		withPooler = withPooler || serverSpecs[s].pooler
	}
	if withNode {
		if err := npmInstall(ctx, filepath.Join(o.benchDir, "express")); err != nil {
			return err
		}
	}
	env := collectEnv(ctx, admin, o.benchDir, withNode, withPooler)
	if err := os.MkdirAll(o.resultsDir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	// Whatever happens, drop what we created.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range o.servers {
			if _, err := admin.ExecContext(cctx, "DROP SCHEMA IF EXISTS "+serverSpecs[s].schema+" CASCADE"); err != nil {
				fmt.Fprintf(os.Stderr, "httpbench: drop schema %s: %v\n", serverSpecs[s].schema, err)
			}
		}
	}()

	var results []result
	for round := 1; round <= o.rounds; round++ {
		for _, name := range o.servers {
			rs, err := benchServer(ctx, o, admin, self, name, stamp, round)
			results = append(results, rs...)
			if err != nil {
				return fmt.Errorf("%s (round %d): %w", name, round, err)
			}
		}
	}

	report := buildReport(o, env, started, results)
	fmt.Print(report)
	path := filepath.Join(o.resultsDir, "httpbench-"+stamp+".md")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "httpbench: report written to %s\n", path)

	var failed []string
	for _, r := range results {
		if r.errors > 0 {
			failed = append(failed, fmt.Sprintf("%s %s: %d errors", r.server, r.workload, r.errors))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("requests failed (every response must be 2xx with the expected body): %s", strings.Join(failed, "; "))
	}
	return nil
}

// benchServer sets up one server's schema, starts it, creates the sessions
// and runs both workloads against it.
func benchServer(ctx context.Context, o options, admin *sql.DB, self, name, stamp string, round int) ([]result, error) {
	spec := serverSpecs[name]
	appName := "httpbench-" + name
	upstream := o.dsn
	poolerPID := 0
	if spec.pooler {
		// A PgBouncer of its own for each pooler server's run, with as many
		// server connections as the direct servers' pools have, all open
		// before the run: the server's backends and the pooler's CPU are
		// then this run's alone.
		logf("round %d, %s: starting PgBouncer (transaction mode, %d server connections)", round, name, o.pool)
		b, err := pgbouncer.StartWith(o.dsn, pgbouncer.Options{PoolSize: o.pool})
		if err != nil {
			return nil, fmt.Errorf("start PgBouncer: %w", err)
		}
		defer func() {
			if err := b.Stop(); err != nil {
				logf("%s: stop PgBouncer: %v", name, err)
			}
		}()
		upstream = poolerDSN(o.dsn, b.Addr())
		poolerPID = b.PID()
	}
	logf("round %d, %s: setting up schema %s", round, name, spec.schema)
	if _, err := admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+spec.schema+" CASCADE; CREATE SCHEMA "+spec.schema); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	if spec.ddl != "" {
		if _, err := admin.ExecContext(ctx, fmt.Sprintf(spec.ddl, spec.schema)); err != nil {
			return nil, fmt.Errorf("create table: %w", err)
		}
	}

	params := map[string]string{"application_name": appName}
	if name == "scs" {
		params["search_path"] = spec.schema // postgresstore names its table "sessions", unqualified
	}
	if spec.pooler {
		for k, v := range poolerParams {
			params[k] = v
		}
	}
	dsn := withParams(upstream, params)
	var srv *child
	var err error
	if spec.node {
		srv, err = startChild(ctx, filepath.Join(o.benchDir, "express"), []string{
			"DATABASE_URL=" + dsn, "SESSION_SCHEMA=" + spec.schema, "SESSION_TABLE=" + spec.table, "NODE_ENV=production",
			"POOL_MAX=" + strconv.Itoa(o.pool),
		}, "node", "server.js")
	} else {
		srv, err = startChild(ctx, "", nil, self, "serve", "-kind", name, "-dsn", dsn,
			"-schema", spec.schema, "-pool", strconv.Itoa(o.pool))
	}
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	transport := newTransport(o.conns)
	defer transport.CloseIdleConnections()

	logf("%s: creating %d sessions through POST /login", name, o.sessions)
	cookies, users, err := login(ctx, transport, srv.base, o.sessions)
	if err != nil {
		return nil, err
	}
	if _, err := admin.ExecContext(ctx, "ANALYZE "+spec.schema+"."+spec.table); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}

	warmup := o.warmup
	if spec.node {
		warmup = o.nodeWarmup
	}
	var results []result
	for i, wl := range workloads {
		r := result{round: round, server: name, workload: wl.name, tripsPerReq: -1}
		seed := uint64(i + 1)
		if warmup > 0 {
			logf("%s %s: warming up for %s", name, wl.name, warmup)
			p, err := runPhase(ctx, transport, srv.base, wl, cookies, users, o.conns, warmup, seed)
			if err != nil {
				return results, err
			}
			// Failures while warming up count too: nothing may fail.
			r.errors += p.errors
			r.errorLog = append(r.errorLog, p.errorLog...)
		}

		tripsBefore, tripsErr := srv.roundTrips()
		before, err := sampleCPU(ctx, admin, srv.pid, poolerPID, appName)
		if err != nil {
			return results, err
		}
		profDone := make(chan error, 1)
		if o.profile && !spec.node && round == 1 {
			r.profile = filepath.Join(o.resultsDir, fmt.Sprintf("httpbench-%s-%s-%s.pprof", stamp, name, wl.name))
			go func() { profDone <- srv.cpuProfile(ctx, int(o.duration/time.Second), r.profile) }()
		} else {
			profDone <- nil
		}
		logf("%s %s: measuring for %s", name, wl.name, o.duration)
		p, err := runPhase(ctx, transport, srv.base, wl, cookies, users, o.conns, o.duration, seed+100)
		if err != nil {
			return results, err
		}
		after, err := sampleCPU(ctx, admin, srv.pid, poolerPID, appName)
		if err != nil {
			return results, err
		}
		tripsAfter, tripsErr2 := srv.roundTrips()
		if err := <-profDone; err != nil {
			return results, fmt.Errorf("CPU profile: %w", err)
		}

		total := p.ok + p.errors
		r.requests = total
		r.errors += p.errors
		r.errorLog = append(r.errorLog, p.errorLog...)
		r.rps = float64(p.ok) / p.elapsed.Seconds()
		r.p50 = percentile(p.latencies, 50)
		r.p99 = percentile(p.latencies, 99)
		r.cpu = usage(before, after, total)
		if tripsErr == nil && tripsErr2 == nil && total > 0 {
			r.tripsPerReq = float64(tripsAfter-tripsBefore) / float64(total)
		}
		logf("%s %s: %.0f req/s, p50 %s, p99 %s, %d errors", name, wl.name, r.rps, r.p50, r.p99, r.errors)
		results = append(results, r)
	}
	return results, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "httpbench: "+format+"\n", args...)
}

// withParams adds connection parameters to a PostgreSQL URL or key=value
// DSN.
func withParams(dsn string, params map[string]string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			for k, v := range params {
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	for k, v := range params {
		dsn += " " + k + "=" + pq.QuoteLiteral(v)
	}
	return dsn
}

// poolerDSN is dsn with its host and port replaced by addr, the pooler's:
// the same database, user and settings, through the pooler.
func poolerDSN(dsn, addr string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Host = addr
			return u.String()
		}
	}
	host, port, _ := strings.Cut(addr, ":")
	// Later key=value pairs override earlier ones.
	return dsn + " host=" + host + " port=" + port
}

// npmInstall installs the Express server's locked dependencies when they
// are missing.
func npmInstall(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "connect-pg-simple")); err == nil {
		return nil
	}
	logf("installing the Express server's dependencies (npm ci)")
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w", dir, err)
	}
	return nil
}

// child is a running server process.
type child struct {
	cmd    *exec.Cmd
	pid    int
	base   string // http://127.0.0.1:PORT
	debug  string // Go servers: the pprof and counter listener
	exited chan struct{}
}

// startChild starts a server and waits for its "listening ..." line:
// "listening PORT" (Node) or "listening ADDR DEBUGADDR" (Go).
func startChild(ctx context.Context, dir string, env []string, name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	// If this process dies, the kernel kills the server too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	var line string
	select {
	case l, ok := <-lines:
		if !ok {
			<-c.exited
			return nil, fmt.Errorf("%s exited before listening: %v", name, cmd.ProcessState)
		}
		line = l
	case <-time.After(60 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s did not start listening within 60s", name)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && f[0] == "listening":
		c.base = "http://127.0.0.1:" + f[1]
	case len(f) == 3 && f[0] == "listening":
		c.base, c.debug = "http://"+f[1], "http://"+f[2]
	default:
		c.stop()
		return nil, fmt.Errorf("%s printed %q, want \"listening ...\"", name, line)
	}
	return c, nil
}

// stop sends SIGTERM, waits up to 10s, then kills.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// roundTrips returns the server's count of round trips to PostgreSQL.
func (c *child) roundTrips() (int64, error) {
	u := c.debug
	if u == "" {
		u = c.base
	}
	resp, err := http.Get(u + "/debug/roundtrips")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// cpuProfile records the Go server's CPU profile for the given seconds into
// path.
func (c *child) cpuProfile(ctx context.Context, seconds int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.debug, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
