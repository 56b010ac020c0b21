// Package cpustat reads CPU time used by this process, by other processes
// on the same machine, and by the machine as a whole. The benchmarks use it
// to split the cost of a request between the client, PostgreSQL and
// everything else. It is read from /proc and getrusage, so it works on
// Linux only; elsewhere every function returns errors.ErrUnsupported.
package cpustat

import "time"

// ClockTick is Linux's USER_HZ, the unit of /proc/*/stat and /proc/stat
// times. It is 100 on every architecture Go supports on Linux.
const ClockTick = 10 * time.Millisecond

// Machine is CPU time summed over all cores since boot.
type Machine struct {
	Busy   time.Duration // user, nice, system, irq, softirq, steal
	IOWait time.Duration // idle with I/O outstanding
	Total  time.Duration // busy and idle
}
