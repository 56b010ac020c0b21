package pgcluster

import (
	"net"
	"net/url"
	"os/user"
	"strings"
)

// LocalDSNs lists the local servers to try when DATABASE_URL is unset, in
// order; the tests and the example app both use it. The server is at PGHOST
// and PGPORT (default 127.0.0.1 and 5432; PGHOST may be a Unix socket
// directory). The user is PGUSER, else the OS user, then postgres; for each
// user, the database is PGDATABASE, else the one named after the user, then
// postgres. getenv is os.Getenv, or a stand-in in tests.
func LocalDSNs(getenv func(string) string) []string {
	host, port := getenv("PGHOST"), getenv("PGPORT")
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "5432"
	}
	first := getenv("PGUSER")
	if first == "" {
		if u, err := user.Current(); err == nil {
			first = u.Username
		}
	}
	var dsns []string
	seen := make(map[string]bool)
	for _, name := range []string{first, "postgres"} {
		db := getenv("PGDATABASE")
		if db == "" {
			db = name
		}
		for _, db := range []string{db, "postgres"} {
			if name == "" || db == "" {
				continue
			}
			// A local server answers at once or not at all: wait 3 seconds.
			q := url.Values{"sslmode": {"disable"}, "connect_timeout": {"3"}}
			u := url.URL{Scheme: "postgres", User: url.User(name), Path: "/" + db}
			if strings.HasPrefix(host, "/") { // a Unix socket directory
				q.Set("host", host)
				q.Set("port", port)
			} else {
				u.Host = net.JoinHostPort(host, port)
			}
			u.RawQuery = q.Encode()
			if dsn := u.String(); !seen[dsn] {
				seen[dsn] = true
				dsns = append(dsns, dsn)
			}
		}
	}
	return dsns
}
