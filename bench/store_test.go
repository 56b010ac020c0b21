package bench_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

// BenchmarkStore runs each store operation against the real PostgreSQL,
// next to its raw-SQL bound on the same pool and rows (RawSelect,
// RawUpdate, RawSelectUpdate), so that ratios come from one run. On a
// shared machine, repeat whole runs rather than using -count, which repeats
// each sub-benchmark back to back:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench Store -benchmem .; done | tee bench.txt
//
// PGSTORE_BENCH_DRIVER=pgx switches from lib/pq to pgx's stdlib driver;
// PGSTORE_BENCH_QUERY_TIMEOUT sets Config.QueryTimeout (a Go duration;
// -1ns turns it off) to measure what the bound costs.
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
	sel, err := e.db.Prepare(`SELECT sess FROM ` + e.table + ` WHERE sid = $1`)
	if err != nil {
		b.Fatal(err)
	}
	defer sel.Close()
	upd, err := e.db.Prepare(`UPDATE ` + e.table + ` SET sess = $2 WHERE sid = $1`)
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
