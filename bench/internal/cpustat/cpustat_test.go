package cpustat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestCPUTimesAdvance(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("cpustat reads /proc: Linux only")
	}
	self0, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	proc0, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m0, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until this process has used 50ms more, which the coarse
	// /proc figures must see too (5 ticks), bounded by wall time.
	deadline := time.Now().Add(20 * time.Second)
	for x := 0; ; x++ {
		if x%1_000_000 == 0 {
			s, err := Self()
			if err != nil {
				t.Fatal(err)
			}
			if s-self0 >= 50*time.Millisecond {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("getrusage did not advance in 20s of spinning")
			}
		}
	}
	proc1, err := Process(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m1, err := ReadMachine()
	if err != nil {
		t.Fatal(err)
	}
	if d := proc1 - proc0; d < 3*ClockTick {
		t.Errorf("/proc/self/stat advanced %v while getrusage advanced 50ms or more", d)
	}
	if d := m1.Busy - m0.Busy; d < 3*ClockTick {
		t.Errorf("/proc/stat busy advanced %v while this process used 50ms or more", d)
	}
	if m1.Total < m1.Busy || m1.Busy <= 0 {
		t.Errorf("machine times inconsistent: %+v", m1)
	}
	if _, err := Process(-1); err == nil {
		t.Error("Process(-1) returned no error")
	}
}
