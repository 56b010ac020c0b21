// Command example is a small gorilla/mux web app whose sessions live in
// PostgreSQL through pgstore: a login form, a visit counter for logged-in
// users, a page of the user's sessions (where they are signed in, with
// buttons that sign the others out), /whoami and /healthz. Anonymous
// visitors get no session: no cookie, no row.
//
//	go run ./example
//
// It reads its settings from the environment:
//
//	DATABASE_URL    The PostgreSQL server to keep sessions in, for example
//	                postgres://app@db.internal:5432/app. When it is unset (in
//	                development only), the app tries the local server the
//	                tests use: PGHOST:PGPORT (default 127.0.0.1:5432) as PGUSER
//	                (default the OS user, then postgres) in PGDATABASE
//	                (default the user's database, then postgres); then starts
//	                a throwaway cluster in $TMPDIR if the PostgreSQL server
//	                binaries are installed; and as a last resort keeps
//	                sessions in signed cookies. The log says which one it
//	                picked. A throwaway cluster is deleted when the app stops
//	                on SIGINT, SIGTERM, SIGHUP or SIGQUIT; one left by a
//	                killed run is deleted at the next start.
//	SESSION_SECRET  Signs the session cookie: a long random value, e.g.
//	                openssl rand -base64 48. Production refuses one shorter
//	                than 32 bytes. In development a shorter one is hashed with
//	                SHA-256 into a 32-byte key, which adds no strength, and
//	                when it is unset each run makes a random key, so sessions
//	                end when the process stops.
//	APP_ENV         "production" requires SESSION_SECRET (32 bytes or more)
//	                and DATABASE_URL and marks the cookie Secure (sent over
//	                HTTPS only). Default: "development".
//	PORT            The port to listen on. Default: 8080.
//
// Endpoints:
//
//	GET  /         an HTML page: who is logged in, their visits, a form
//	POST /login    form field user (1 to 64 characters); redirects (303) to /
//	POST /logout   ends the session; redirects (303) to /, or answers 200
//	               {"user":null} when the request accepts application/json
//	GET  /sessions the logged-in user's sessions: browser, IP address, when
//	               signed in, last active (to within a minute), expiry, this
//	               device marked; redirects (303) to / when logged out. With
//	               the development cookie store, 404: it keeps no list
//	POST /sessions/end     form field handle (from the page): signs that
//	               session of the user out; redirects (303) to /sessions
//	POST /sessions/others  signs out every session of the user but this
//	               one; redirects (303) to /sessions
//	GET  /whoami   {"user":"alice"} or {"user":null}
//	GET  /healthz  200 "ok", or 503 when the database does not answer
//
// While the session database cannot be read, /, /login, /whoami and the
// /sessions pages answer 503 with Retry-After: a visitor who may be logged
// in is never shown as logged out.
//
// The forms are protected from cross-site requests as the login and logout
// forms are: by the session cookie's SameSite=Lax, which a browser does not
// send with a POST from another site. Each session records the browser's
// user agent and IP address at login (pgstore's RecordClient), personal
// data shown to the user only; behind a proxy, set ClientIP in
// openPostgres to read the address the proxy vouches for.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// shutdownTimeout is how long in-flight requests get to finish on a stop
// signal.
const shutdownTimeout = 10 * time.Second

// stopSignals are the signals that stop the app cleanly: Ctrl-C, a service
// manager's stop, a closed terminal (SIGHUP) and Ctrl-\. Each would
// otherwise end the process at once and leave a throwaway cluster running.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("example stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	cfg, err := configFromEnv(os.Getenv, log)
	if err != nil {
		return err
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}

	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()

	a, err := newApp(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped while starting")
			return nil
		}
		return err
	}
	defer a.Close()

	// Listen before announcing, so that a busy port is an error at once.
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "url", "http://localhost:"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// From here on, a second signal ends the process at once; the next run
	// removes a throwaway cluster that this one then leaves behind.
	stop()
	// After SIGHUP, stderr may be a pipe whose reader went with the
	// terminal; a write to it must not kill the process before it cleans up.
	signal.Ignore(syscall.SIGPIPE)
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("requests still running at shutdown were cut off", "err", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		log.Warn("server stopped with an error", "err", err)
	}
	// Close the store only after the last request is done with it.
	return a.Close()
}
