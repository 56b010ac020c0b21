//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly || illumos

package ownerdir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Lock creates the owner file in dir and holds an exclusive flock on it
// until the returned file is closed. The kernel drops the lock when the
// process dies, however it dies, so a lock that can be taken means the owner
// is gone. (flock, not fcntl: fcntl locks would not conflict within one
// process, and tests run several servers in one.) The descriptor is
// close-on-exec, so the servers started do not inherit the lock.
func Lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// take takes the lock of an owned directory when its owner is gone.
// stale is false when the owner still holds it, when dir has no owner file,
// or when the file cannot be opened (another user's).
func take(dir string) (owner *os.File, stale bool) {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_RDWR, 0)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// ProcessAlive reports whether a process with this PID runs (EPERM: it
// does, as another user). A zombie, dead but not yet reaped by its parent,
// does not run; Linux tells them apart in /proc.
func ProcessAlive(pid int) bool {
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
