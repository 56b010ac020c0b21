// Package integration holds pgstore's ecosystem conformance suite: tests
// that run pgstore, with its default Config, under the libraries and
// frameworks applications put it in (gorilla/sessions' own contract,
// goth's gothic, Echo's session middleware, chi and net/http,
// gorilla/csrf, code written for gorilla's CookieStore), each over a real
// HTTP server, a browser-like cookie jar and a real PostgreSQL. It is its
// own module, so that those dependencies stay out of pgstore's go.mod;
// the root's go test ./... runs it (modules_test.go). It has no API.
package integration
