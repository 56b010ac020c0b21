//go:build !race

package pgstore_test

// raceEnabled reports whether this test binary was built with -race.
const raceEnabled = false
