//go:build !linux

package cpustat

import (
	"errors"
	"time"
)

// Self returns the CPU time this process has used (Linux only).
func Self() (time.Duration, error) { return 0, errors.ErrUnsupported }

// Process returns the CPU time of process pid (Linux only).
func Process(pid int) (time.Duration, error) { return 0, errors.ErrUnsupported }

// ReadMachine returns the machine's CPU time over all cores (Linux only).
func ReadMachine() (Machine, error) { return Machine{}, errors.ErrUnsupported }
