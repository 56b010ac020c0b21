//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly || illumos)

package pgbouncer

import "os"

// Without flock there is no owner lock: RemoveStale never takes a Bouncer
// for stale here.

func lockOwner(string) (*os.File, error) { return nil, nil }

func takeOwner(string) (*os.File, bool) { return nil, false }

func processAlive(int) bool { return true }
