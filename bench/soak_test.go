package bench_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pgsessions/pgstore"
)

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
		st := newStore(b, db, pgstore.Config{})
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
