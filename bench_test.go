package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/internal/cpustat"
	"github.com/pgsessions/pgstore/internal/pgtest"
)

// Store-level benchmarks against the real PostgreSQL, with a raw-SQL
// baseline on the same pool and rows (RawSelect, RawUpdate,
// RawSelectUpdate), each next to the store operation it bounds, so that
// ratios come from one run. On a shared machine, repeat whole runs rather
// than using -count, which repeats each sub-benchmark back to back:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench Store -benchmem .; done | tee bench.txt
//
// PGSTORE_BENCH_DRIVER=pgx switches from lib/pq to pgx's stdlib driver;
// PGSTORE_BENCH_QUERY_TIMEOUT sets BenchmarkStore's Config.QueryTimeout
// (a Go duration; -1ns turns it off) to measure what the bound costs.

func benchDriver() string {
	if d := os.Getenv("PGSTORE_BENCH_DRIVER"); d != "" {
		return d
	}
	return "postgres"
}

// benchSessions is how many sessions the benchmarks spread their requests
// over, so parallel writers do not queue on one row.
const benchSessions = 64

type benchEnv struct {
	db      *sql.DB
	st      *pgstore.Store
	schema  string
	cookies []*http.Cookie
	ids     []string
	sess    []string // each session's sess as stored, for the raw baseline
}

func newBenchEnv(b *testing.B, cfg pgstore.Config) *benchEnv {
	b.Helper()
	db := sharedDB(b, benchDriver())
	db.SetMaxOpenConns(2 * runtime.GOMAXPROCS(0))
	db.SetMaxIdleConns(2 * runtime.GOMAXPROCS(0))
	e := &benchEnv{db: db}
	e.st = newTestStore(b, db, cfg)
	e.schema = e.st.SchemaName()
	for i := 0; i < benchSessions; i++ {
		c := login(b, e.st, map[any]any{"user_id": 1000 + i, "user": fmt.Sprintf("user%d@example.com", i), "csrf": "0123456789abcdef0123456789abcdef"})
		e.cookies = append(e.cookies, c)
		e.ids = append(e.ids, decodeID(b, c))
		var sess string
		if err := db.QueryRow(`SELECT sess FROM `+qualified(e.schema, "user_sessions")+` WHERE sid = $1`, e.ids[i]).Scan(&sess); err != nil {
			b.Fatal(err)
		}
		e.sess = append(e.sess, sess)
	}
	return e
}

// requests returns one reusable request per session. Each use must start
// from reset, because the store (like gorilla's registry) records state in
// the request's context.
type benchRequest struct {
	r, orig http.Request
}

func (e *benchEnv) request(i int) *benchRequest {
	r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil).WithContext(requestContext())
	if i >= 0 {
		r.AddCookie(&http.Cookie{Name: cookieName, Value: e.cookies[i%len(e.cookies)].Value})
	}
	return &benchRequest{r: *r, orig: *r}
}

func (br *benchRequest) reset() *http.Request {
	br.r = br.orig
	return &br.r
}

// requestContext is a context like the one net/http gives every handler:
// cancellable. Both the store and the raw baseline query with one, as any
// server does; with context.Background, lib/pq would skip its per-query
// cancel watcher, which no server request does.
func requestContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	_ = cancel // lives as long as the benchmark process
	return ctx
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header {
	for k := range d.h {
		delete(d.h, k)
	}
	return d.h
}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func newDiscard() *discard { return &discard{h: http.Header{}} }

// run runs op serially and in parallel, each worker on its own session,
// and reports the CPU time each op cost this process and PostgreSQL.
func (e *benchEnv) run(b *testing.B, op func(b *testing.B, worker, i int)) {
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		m := startCPU(b, e.db)
		for i := 0; i < b.N; i++ {
			op(b, 0, i)
		}
		m.report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		m := startCPU(b, e.db)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			worker := int(next.Add(1)) % benchSessions
			for i := 0; pb.Next(); i++ {
				op(b, worker, i)
			}
		})
		m.report(b)
	})
}

// cpuMeter measures the CPU time a benchmark costs per op on each side of
// the connection: this process (client-µs/op: the driver, database/sql and
// the store) and the PostgreSQL backends of db (pg-µs/op). On two cores a
// parallel benchmark is bound by their sum, so these explain the parallel
// figures where wall time alone cannot. Each is reported only when it can
// be read: on Linux, and for pg-µs/op with the server on this machine.
type cpuMeter struct {
	db   *sql.DB
	self time.Duration
	pg   map[int]time.Duration
	err  error
}

// startCPU samples CPU times with the benchmark timer stopped, then resets
// the timer.
func startCPU(b *testing.B, db *sql.DB) *cpuMeter {
	b.StopTimer()
	defer b.ResetTimer()
	defer b.StartTimer()
	m := &cpuMeter{db: db}
	m.self, m.err = cpustat.Self()
	m.pg = backendCPU(db)
	return m
}

func (m *cpuMeter) report(b *testing.B) {
	b.StopTimer()
	if m.err != nil || b.N == 0 {
		return
	}
	self, err := cpustat.Self()
	if err != nil {
		return
	}
	perOp := func(d time.Duration) float64 { return float64(d) / 1e3 / float64(b.N) }
	b.ReportMetric(perOp(self-m.self), "client-µs/op")
	var pg time.Duration
	for pid, after := range backendCPU(m.db) {
		pg += after - m.pg[pid] // a backend that started meanwhile counts from zero
	}
	if pg > 0 {
		b.ReportMetric(perOp(pg), "pg-µs/op")
	}
}

// backendCPU returns the CPU time so far of each backend connected to db's
// database, leaving out those that cannot be read (another machine's).
func backendCPU(db *sql.DB) map[int]time.Duration {
	cpu := make(map[int]time.Duration)
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		return cpu
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			if d, err := cpustat.Process(pid); err == nil {
				cpu[pid] = d
			}
		}
	}
	return cpu
}

func BenchmarkStore(b *testing.B) {
	cfg := pgstore.Config{}
	if v := os.Getenv("PGSTORE_BENCH_QUERY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PGSTORE_BENCH_QUERY_TIMEOUT: %v", err)
		}
		cfg.QueryTimeout = d
	}
	e := newBenchEnv(b, cfg)
	load := func(b *testing.B, br *benchRequest) (*http.Request, *sessions.Session) {
		r := br.reset()
		s, err := e.st.New(r, cookieName)
		if err != nil || s.IsNew {
			b.Fatalf("Get: new %v, %v", s.IsNew, err)
		}
		return r, s
	}
	perWorker := func(withCookie bool) []*benchRequest {
		reqs := make([]*benchRequest, benchSessions)
		for i := range reqs {
			if withCookie {
				reqs[i] = e.request(i)
			} else {
				reqs[i] = e.request(-1)
			}
		}
		return reqs
	}

	// The floor, on the same pool and rows: a prepared SELECT and a
	// prepared UPDATE writing a sess of the same size, with no signing,
	// no decoding and no expiry logic.
	table := qualified(e.schema, "user_sessions")
	sel, err := e.db.Prepare(`SELECT sess FROM ` + table + ` WHERE sid = $1`)
	if err != nil {
		b.Fatal(err)
	}
	defer sel.Close()
	upd, err := e.db.Prepare(`UPDATE ` + table + ` SET sess = $2 WHERE sid = $1`)
	if err != nil {
		b.Fatal(err)
	}
	defer upd.Close()
	ctx := requestContext()
	rawSelect := func(b *testing.B, w int) {
		var sess []byte
		if err := sel.QueryRowContext(ctx, e.ids[w]).Scan(&sess); err != nil {
			b.Fatal(err)
		}
	}
	rawUpdate := func(b *testing.B, w, i int) {
		if _, err := upd.ExecContext(ctx, e.ids[w], `{"n":`+strconv.Itoa(i)+`,`+e.sess[w][1:]); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("GetHit", func(b *testing.B) {
		reqs := perWorker(true)
		e.run(b, func(b *testing.B, w, _ int) { load(b, reqs[w]) })
	})
	b.Run("RawSelect", func(b *testing.B) {
		e.run(b, func(b *testing.B, w, _ int) { rawSelect(b, w) })
	})
	b.Run("GetBadCookie", func(b *testing.B) {
		reqs := make([]*benchRequest, benchSessions)
		for i := range reqs {
			r := httptest.NewRequest(http.MethodGet, "http://example.test/", nil).WithContext(requestContext())
			r.AddCookie(&http.Cookie{Name: cookieName, Value: e.cookies[i].Value[:40] + "AAAAAAAAAAAAAAAA" + e.cookies[i].Value[56:]})
			reqs[i] = &benchRequest{r: *r, orig: *r}
		}
		e.run(b, func(b *testing.B, w, _ int) {
			s, err := e.st.New(reqs[w].reset(), cookieName)
			if err != nil || !s.IsNew {
				b.Fatal("bad cookie loaded a session")
			}
		})
	})
	b.Run("SaveUnchanged", func(b *testing.B) {
		reqs := perWorker(true)
		e.run(b, func(b *testing.B, w, _ int) {
			r, s := load(b, reqs[w])
			if err := e.st.Save(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
		})
	})
	// SaveModified times the Save alone (serial only: the Get before it
	// runs with the timer stopped); GetSaveModified is the whole request.
	b.Run("SaveModified", func(b *testing.B) {
		b.ReportAllocs()
		br := e.request(0)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			r, s := load(b, br)
			s.Values["n"] = i
			b.StartTimer()
			if err := e.st.Save(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetSaveModified", func(b *testing.B) {
		reqs := perWorker(true)
		e.run(b, func(b *testing.B, w, i int) {
			r, s := load(b, reqs[w])
			s.Values["n"] = i
			if err := e.st.Save(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("RawUpdate", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			rawUpdate(b, 0, i)
		}
	})
	b.Run("RawSelectUpdate", func(b *testing.B) {
		e.run(b, func(b *testing.B, w, i int) {
			rawSelect(b, w)
			rawUpdate(b, w, i)
		})
	})
	b.Run("NewSave", func(b *testing.B) {
		reqs := perWorker(false)
		e.run(b, func(b *testing.B, w, i int) {
			r := reqs[w].reset()
			s, _ := e.st.New(r, cookieName)
			s.Values["user_id"] = i
			if err := e.st.Save(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("Regenerate", func(b *testing.B) {
		reqs := perWorker(false)
		e.run(b, func(b *testing.B, w, i int) {
			r := reqs[w].reset()
			s, _ := e.st.New(r, cookieName)
			s.Values["user_id"] = i
			if err := e.st.Regenerate(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
		})
	})

	// The targets as ratios measured in the same moments: each store
	// operation alternates with its raw-SQL bound in short blocks, so that
	// a shared machine's drift, which moves whole sub-benchmarks by 20 %,
	// falls on both sides alike.
	b.Run("GetVsRawSelect", func(b *testing.B) {
		reqs := perWorker(true)
		get := timed(func(b *testing.B, w, _ int) { load(b, reqs[w]) })
		raw := timed(func(b *testing.B, w, _ int) { rawSelect(b, w) })
		b.Run("serial", func(b *testing.B) { paired(b, false, get, raw) })
		b.Run("parallel", func(b *testing.B) { paired(b, true, get, raw) })
	})
	b.Run("SaveVsRawUpdate", func(b *testing.B) {
		reqs := perWorker(true)
		save := func(b *testing.B, w, i int) time.Duration {
			r, s := load(b, reqs[w]) // untimed
			s.Values["n"] = i
			start := time.Now()
			if err := e.st.Save(r, newDiscard(), s); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		// The raw side reads the row first too, untimed, as the Get before
		// a Save does: an UPDATE right after a SELECT on the same
		// connection is measurably slower here than one after an UPDATE,
		// whoever sends it.
		raw := func(b *testing.B, w, i int) time.Duration {
			rawSelect(b, w)
			start := time.Now()
			rawUpdate(b, w, i)
			return time.Since(start)
		}
		b.Run("serial", func(b *testing.B) { paired(b, false, save, raw) })
	})
}

// timedOp runs one operation and returns the time that counts.
type timedOp func(b *testing.B, worker, i int) time.Duration

func timed(op func(b *testing.B, worker, i int)) timedOp {
	return func(b *testing.B, w, i int) time.Duration {
		start := time.Now()
		op(b, w, i)
		return time.Since(start)
	}
}

// pairBlock is how many operations of one kind run before switching to the
// other: a few milliseconds, short against the machine's drift.
const pairBlock = 32

// paired alternates store and raw in blocks of pairBlock operations (all
// workers switching together when parallel) and reports the mean time of
// each, as store-µs/op and raw-µs/op, and store-µs/op ÷ raw-µs/op as
// store/raw. With workers, each time is the latency a worker saw while the
// others ran the same kind of operation, so the ratio is that of the
// throughputs. ns/op, the mix of both, is not meant to be read.
func paired(b *testing.B, parallel bool, store, raw timedOp) {
	var sum, count [2]atomic.Int64
	var seq, next atomic.Int64
	block := int64(pairBlock)
	if parallel {
		block *= int64(runtime.GOMAXPROCS(0))
	}
	one := func(w, i int) {
		k := (seq.Add(1) - 1) / block % 2
		op := store
		if k == 1 {
			op = raw
		}
		sum[k].Add(int64(op(b, w, i)))
		count[k].Add(1)
	}
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			w := int(next.Add(1)) % benchSessions
			for i := 0; pb.Next(); i++ {
				one(w, i)
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			one(0, i)
		}
	}
	if count[0].Load() == 0 || count[1].Load() == 0 {
		return // b.N too small to reach the second kind
	}
	mean := func(k int) float64 { return float64(sum[k].Load()) / float64(count[k].Load()) / 1e3 }
	b.ReportMetric(mean(0), "store-µs/op")
	b.ReportMetric(mean(1), "raw-µs/op")
	b.ReportMetric(mean(0)/mean(1), "store/raw")
}

// BenchmarkGrowth: Get and Save latency against tables of 10k, 100k and 1M
// rows. Every lookup is by primary key, so they should stay flat.
func BenchmarkGrowth(b *testing.B) {
	for _, rows := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			e := newBenchEnv(b, pgstore.Config{})
			insertRows(b, e.db, e.schema, rows, time.Now().Add(time.Hour), "filler")
			if _, err := e.db.Exec(`VACUUM ANALYZE ` + qualified(e.schema, "user_sessions")); err != nil {
				b.Fatal(err)
			}
			b.Run("Get", func(b *testing.B) {
				b.ReportAllocs()
				br := e.request(0)
				for i := 0; i < b.N; i++ {
					if s, err := e.st.New(br.reset(), cookieName); err != nil || s.IsNew {
						b.Fatal("Get failed")
					}
				}
			})
			b.Run("SaveModified", func(b *testing.B) {
				b.ReportAllocs()
				br := e.request(1)
				for i := 0; i < b.N; i++ {
					r := br.reset()
					s, _ := e.st.New(r, cookieName)
					s.Values["n"] = i
					if err := e.st.Save(r, newDiscard(), s); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkGetWhilePruning compares Get latency at rest with Get latency
// while a backlog of expired rows (1M by default; PGSTORE_BENCH_BACKLOG to
// change) is pruned, in one run. It reports p50 and p99 in microseconds and
// whether the prune was still running when the measurement ended.
func BenchmarkGetWhilePruning(b *testing.B) {
	backlog := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("PGSTORE_BENCH_BACKLOG")); err == nil {
		backlog = v
	}
	measure := func(b *testing.B, e *benchEnv) []time.Duration {
		lat := make([]time.Duration, 0, b.N)
		br := e.request(0)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if s, err := e.st.New(br.reset(), cookieName); err != nil || s.IsNew {
				b.Fatal("Get failed")
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		return lat
	}
	report := func(b *testing.B, lat []time.Duration) {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("rest", func(b *testing.B) {
		e := newBenchEnv(b, pgstore.Config{})
		report(b, measure(b, e))
	})
	b.Run("pruning", func(b *testing.B) {
		e := newBenchEnv(b, pgstore.Config{})
		b.StopTimer()
		insertRows(b, e.db, e.schema, backlog, time.Now().Add(-time.Hour), "expired")
		if _, err := e.db.Exec(`ANALYZE ` + qualified(e.schema, "user_sessions")); err != nil {
			b.Fatal(err)
		}
		// Another store on the table prunes, as another instance would,
		// through a proxy that tells when its first batch is sent; the
		// measured Gets use the env's own pool, without the proxy.
		pruneDB, proxy := proxied(b, benchDriver())
		pruner := newTestStore(b, pruneDB, pgstore.Config{SchemaName: e.schema, SkipCreateTable: true})
		started := proxy.Await(pruner.PruneSQL())
		var wg sync.WaitGroup
		var pruned atomic.Int64
		var running atomic.Bool
		running.Store(true)
		ctx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Store(false)
			n, err := pruner.Prune(ctx)
			pruned.Store(n)
			if err != nil && ctx.Err() == nil {
				b.Error(err)
			}
		}()
		select {
		case <-started:
		case <-time.After(time.Minute):
			cancel()
			wg.Wait()
			b.Fatal("the prune sent no batch within a minute")
		}
		b.StartTimer()
		lat := measure(b, e)
		stillRunning := running.Load()
		cancel()
		wg.Wait()
		report(b, lat)
		if stillRunning {
			b.ReportMetric(1, "overlapped")
		} else {
			b.ReportMetric(0, "overlapped")
		}
		b.ReportMetric(float64(pruned.Load()), "pruned-rows")
	})
}

var _ = pgtest.Drivers

// BenchmarkSoakHeap creates sessions through the store in-process (with
// httptest, no network) and samples the Go heap after a GC every tenth of
// the way: with sessions in PostgreSQL the heap must stay flat. For
// contrast it does the same with a map-based in-memory store written here
// for the purpose (gorilla ships none), which grows with every session. Run
// it alone:
//
//	go test -run '^$' -bench SoakHeap -benchtime 1x -timeout 60m .
//
// PGSTORE_SOAK_SESSIONS sets the count (default 1,000,000).
func BenchmarkSoakHeap(b *testing.B) {
	total := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("PGSTORE_SOAK_SESSIONS")); err == nil && v > 0 {
		total = v
	}
	soak := func(b *testing.B, store sessions.Store) {
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := store.Get(r, cookieName)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s.Values["user_id"] = 12345
			s.Values["user"] = "alice@example.com"
			if err := s.Save(r, w); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
		const workers = 8
		step := total / 10
		var samples []uint64
		sample := func() {
			runtime.GC()
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			samples = append(samples, m.HeapAlloc)
		}
		sample()
		start := time.Now()
		for done := 0; done < total; done += step {
			var wg sync.WaitGroup
			var failed atomic.Int64
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < step; i += workers {
						rec := httptest.NewRecorder()
						handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://example.test/", nil))
						if rec.Code != http.StatusOK || len(rec.Result().Cookies()) != 1 {
							failed.Add(1)
						}
					}
				}(w)
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d requests failed", n)
			}
			sample()
		}
		elapsed := time.Since(start)
		first, last := samples[1], samples[len(samples)-1] // after the first tenth: pools and caches are warm
		perHundredK := (float64(last) - float64(first)) / float64(total-step) * 100_000 / (1 << 20)
		b.ReportMetric(perHundredK, "MB-growth/100k-sessions")
		b.ReportMetric(float64(total)/elapsed.Seconds(), "sessions/s")
		b.Logf("heap after GC, every %d sessions (MB):", step)
		for i, h := range samples {
			b.Logf("  %8d  %8.2f", i*step, float64(h)/(1<<20))
		}
	}
	b.Run("pgstore", func(b *testing.B) {
		db := sharedDB(b, benchDriver())
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		st := newTestStore(b, db, pgstore.Config{})
		soak(b, st)
	})
	b.Run("mapstore-contrast", func(b *testing.B) {
		soak(b, newMapStore())
	})
}

// mapStore keeps sessions in a map, as express-session's MemoryStore does.
// It exists only as the contrast in BenchmarkSoakHeap and is not safe to
// use anywhere else: its cookie is the bare, unsigned ID.
type mapStore struct {
	mu       sync.Mutex
	sessions map[string]map[any]any
	next     atomic.Int64
}

func newMapStore() *mapStore { return &mapStore{sessions: map[string]map[any]any{}} }

func (m *mapStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(m, name)
}

func (m *mapStore) New(r *http.Request, name string) (*sessions.Session, error) {
	s := sessions.NewSession(m, name)
	s.Options = pgstore.DefaultOptions()
	s.IsNew = true
	if c, err := r.Cookie(name); err == nil {
		m.mu.Lock()
		values, ok := m.sessions[c.Value]
		m.mu.Unlock()
		if ok {
			s.ID, s.IsNew = c.Value, false
			for k, v := range values {
				s.Values[k] = v
			}
		}
	}
	return s, nil
}

func (m *mapStore) Save(_ *http.Request, w http.ResponseWriter, s *sessions.Session) error {
	if s.ID == "" {
		s.ID = fmt.Sprintf("%032d", m.next.Add(1))
	}
	values := make(map[any]any, len(s.Values))
	for k, v := range s.Values {
		values[k] = v
	}
	m.mu.Lock()
	m.sessions[s.ID] = values
	m.mu.Unlock()
	http.SetCookie(w, sessions.NewCookie(s.Name(), s.ID, s.Options))
	return nil
}
