package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/*/stat and /proc/stat
// times. It is 100 on every architecture Go supports on Linux.
const clockTick = 10 * time.Millisecond

// cpuSample is a snapshot of the CPU time used so far by the load generator
// (this process), the server process, the server's PostgreSQL backends, and
// the whole machine.
type cpuSample struct {
	loadgen  time.Duration
	server   time.Duration
	backends map[int]time.Duration
	busy     time.Duration // all cores, whole machine
	iowait   time.Duration // idle with I/O outstanding, all cores
	total    time.Duration // all cores, busy or idle
}

// cpuUse is what a measured window cost, per request.
type cpuUse struct {
	loadgen, server, backends, other time.Duration // per request
	machineBusy                      float64       // percent of all cores
	machineIOWait                    float64       // percent of all cores
}

// own is the CPU the run itself used per request: load generator, server
// and the server's backends.
func (u cpuUse) own() time.Duration { return u.loadgen + u.server + u.backends }

func sampleCPU(ctx context.Context, db *sql.DB, serverPID int, appName string) (cpuSample, error) {
	var s cpuSample
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s, err
	}
	s.loadgen = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	s.server, _ = procCPU(serverPID) // 0 if the process is gone
	pids, err := backendPIDs(ctx, db, appName)
	if err != nil {
		return s, err
	}
	s.backends = make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		if d, err := procCPU(pid); err == nil {
			s.backends[pid] = d
		}
	}
	s.busy, s.iowait, s.total, err = machineCPU()
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
	other := max(busy-loadgen-server-backends, 0)
	u := cpuUse{
		loadgen:  loadgen / time.Duration(requests),
		server:   server / time.Duration(requests),
		backends: backends / time.Duration(requests),
		other:    other / time.Duration(requests),
	}
	if total := after.total - before.total; total > 0 {
		u.machineBusy = 100 * float64(busy) / float64(total)
		u.machineIOWait = 100 * float64(after.iowait-before.iowait) / float64(total)
	}
	return u
}

// procCPU returns the user+system time of process pid, all its threads.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it start with the state (field 3 of proc(5)).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// machineCPU returns busy, iowait and total time over all cores from
// /proc/stat.
func machineCPU() (busy, iowait, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var sum, idle, wait int64
	// user nice system idle iowait irq softirq steal (guest time is
	// already inside user and nice).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
		if i == 4 {
			wait = n
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(wait) * clockTick, time.Duration(sum) * clockTick, nil
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
