package cpustat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Self returns the user and system CPU time this process has used, all its
// threads, at microsecond resolution.
func Self() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cpustat: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Process returns the user and system CPU time of process pid, all its
// threads, at ClockTick resolution.
func Process(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpustat: %w", err)
	}
	// The command name is in parentheses and may hold spaces; the fields
	// after it start with the state (field 3 of proc(5)).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpustat: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("cpustat: /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpustat: /proc/%d/stat: bad utime or stime", pid)
	}
	return time.Duration(utime+stime) * ClockTick, nil
}

// ReadMachine returns the machine's CPU time over all cores from
// /proc/stat.
func ReadMachine() (Machine, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, fmt.Errorf("cpustat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("cpustat: /proc/stat: unexpected first line %q", line)
	}
	var sum, idle, wait int64
	// user nice system idle iowait irq softirq steal (guest time is
	// already inside user and nice).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("cpustat: /proc/stat: %w", err)
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
		if i == 4 {
			wait = n
		}
	}
	return Machine{
		Busy:   time.Duration(sum-idle) * ClockTick,
		IOWait: time.Duration(wait) * ClockTick,
		Total:  time.Duration(sum) * ClockTick,
	}, nil
}
