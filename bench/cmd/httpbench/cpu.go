package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pgsessions/pgstore/bench/internal/cpustat"
)

// cpuSample is a snapshot of the CPU time used so far by the load generator
// (this process), the server process, the PgBouncer between it and
// PostgreSQL if any, the server's PostgreSQL backends, and the whole
// machine.
type cpuSample struct {
	loadgen  time.Duration
	server   time.Duration
	pooler   time.Duration
	backends map[int]time.Duration
	busy     time.Duration // all cores, whole machine
	iowait   time.Duration // idle with I/O outstanding, all cores
	total    time.Duration // all cores, busy or idle
}

// cpuUse is what a measured window cost, per request.
type cpuUse struct {
	loadgen, server, pooler, backends, other time.Duration // per request
	machineBusy                              float64       // percent of all cores
	machineIOWait                            float64       // percent of all cores
}

// own is the CPU the run itself used per request: load generator, server,
// pooler and the server's backends.
func (u cpuUse) own() time.Duration { return u.loadgen + u.server + u.pooler + u.backends }

// sampleCPU reads the CPU times; poolerPID is 0 without a pooler.
func sampleCPU(ctx context.Context, db *sql.DB, serverPID, poolerPID int, appName string) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.loadgen, err = cpustat.Self(); err != nil {
		return s, err
	}
	s.server, _ = cpustat.Process(serverPID) // 0 if the process is gone
	if poolerPID != 0 {
		if s.pooler, err = cpustat.Process(poolerPID); err != nil {
			return s, fmt.Errorf("PgBouncer's CPU time: %w", err)
		}
	}
	pids, err := backendPIDs(ctx, db, appName)
	if err != nil {
		return s, err
	}
	s.backends = make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if d, err := cpustat.Process(pid); err == nil {
			s.backends[pid] = d
		}
	}
	m, err := cpustat.ReadMachine()
	s.busy, s.iowait, s.total = m.Busy, m.IOWait, m.Total
	return s, err
}

// usage turns two samples into per-request costs. Backends that appeared
// during the window count from zero; ones that went away are lost, which is
// rare because the pools keep their connections.
func usage(before, after cpuSample, requests int64) cpuUse {
	if requests <= 0 {
		return cpuUse{}
	}
	var backends time.Duration
	for pid, d := range after.backends {
		backends += d - before.backends[pid]
	}
	busy := after.busy - before.busy
	loadgen := after.loadgen - before.loadgen
	server := after.server - before.server
	pooler := after.pooler - before.pooler
	other := max(busy-loadgen-server-pooler-backends, 0)
	u := cpuUse{
		loadgen:  loadgen / time.Duration(requests),
		server:   server / time.Duration(requests),
		pooler:   pooler / time.Duration(requests),
		backends: backends / time.Duration(requests),
		other:    other / time.Duration(requests),
	}
	if total := after.total - before.total; total > 0 {
		u.machineBusy = 100 * float64(busy) / float64(total)
		u.machineIOWait = 100 * float64(after.iowait-before.iowait) / float64(total)
	}
	return u
}

// backendPIDs lists the PostgreSQL backends serving connections whose
// application_name is appName.
func backendPIDs(ctx context.Context, db *sql.DB, appName string) ([]int, error) {
	rows, err := db.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", appName)
	if err != nil {
		return nil, fmt.Errorf("list backends: %w", err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, rows.Err()
}
