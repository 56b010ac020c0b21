package bench_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/pgsessions/pgstore/bench/internal/cpustat"
)

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
