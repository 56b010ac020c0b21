package pgstore

import (
	"net/url"
	"strings"
)

// describeDSN says which server a DSN points at, without its password, for
// error messages.
func describeDSN(dsn string) string {
	var host, port, db, user string
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		host, port, user = u.Hostname(), u.Port(), u.User.Username()
		db = strings.TrimPrefix(u.Path, "/")
		if h := u.Query().Get("host"); h != "" {
			host = h
		}
	} else {
		for _, f := range strings.Fields(dsn) {
			k, v, _ := strings.Cut(f, "=")
			v = strings.Trim(v, "'")
			switch k {
			case "host":
				host = v
			case "port":
				port = v
			case "dbname":
				db = v
			case "user":
				user = v
			}
		}
	}
	var parts []string
	for _, kv := range [][2]string{{"host", host}, {"port", port}, {"dbname", db}, {"user", user}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if len(parts) == 0 {
		return "the default server (libpq defaults and PG* environment variables)"
	}
	return strings.Join(parts, " ")
}

// defaultConnectTimeout is the connect_timeout Open adds to a DSN without
// one, in seconds.
const defaultConnectTimeout = "10"

// withConnectTimeout adds connect_timeout to dsn unless it has one.
func withConnectTimeout(dsn string) string {
	return withDefault(dsn, "connect_timeout", defaultConnectTimeout)
}

// withDefault sets key to value in dsn (a URL or key=value string) unless
// dsn sets key already.
func withDefault(dsn, key, value string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		if q.Has(key) {
			return dsn
		}
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, key+"=") {
			return dsn
		}
	}
	if strings.TrimSpace(dsn) == "" {
		return key + "=" + value
	}
	return dsn + " " + key + "=" + value
}
