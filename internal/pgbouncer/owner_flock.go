//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly || illumos

package pgbouncer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockOwner creates the owner file in dir and holds an exclusive flock on it
// until the returned file is closed. The kernel drops the lock when the
// process dies, however it dies, so a lock that can be taken means the owner
// is gone. (flock, not fcntl: fcntl locks would not conflict within one
// process, and tests may run several Bouncers in one.) The descriptor is
// close-on-exec, so pgbouncer does not inherit the lock.
func lockOwner(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ownerFile), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// takeOwner takes the lock of a Bouncer directory when its owner is gone.
// stale is false when the owner still holds it, when dir has no owner file,
// or when the file cannot be opened (another user's Bouncer).
func takeOwner(dir string) (owner *os.File, stale bool) {
	f, err := os.OpenFile(filepath.Join(dir, ownerFile), os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// processAlive reports whether a process with this PID runs (EPERM: it
// does, as another user). A zombie, dead but not yet reaped by its parent,
// does not run; Linux tells them apart in /proc.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// Without /proc (not Linux), trust kill; with it, the process
		// has exited meanwhile.
		_, errSelf := os.Stat("/proc/self/stat")
		return errSelf != nil || !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
