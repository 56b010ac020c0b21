// Package bench holds pgstore's benchmarks, in a module of their own so that
// the library's module carries none of their code or dependencies.
//
// The store-level benchmarks are in this package's test files and use only
// pgstore's public API; run them from this directory with go test -bench
// (see ../docs/benchmarks.md for each command). They find PostgreSQL the way
// the library's tests do: DATABASE_URL, else a local server, else a
// throwaway cluster. cmd/httpbench compares pgstore with other session
// stores over HTTP. This package has no code of its own.
package bench
