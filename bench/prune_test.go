package bench_test

import (
	"context"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

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
		insertRows(b, e.db, e.table, backlog, time.Now().Add(-time.Hour), "expired")
		if _, err := e.db.Exec(`ANALYZE ` + e.table); err != nil {
			b.Fatal(err)
		}
		// Another store on the table prunes, as another instance would,
		// through a proxy that tells when its first batch is sent (the
		// only DELETE that pool sends); the measured Gets use the env's
		// own pool, without the proxy.
		pruneDB, proxy := proxied(b, benchDriver())
		pruner := newStore(b, pruneDB, pgstore.Config{SchemaName: e.schema, SkipCreateTable: true})
		started := proxy.Await("DELETE FROM")
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
