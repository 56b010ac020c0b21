// Command example is a small gorilla/mux web app whose sessions live in
// PostgreSQL through pgstore: a login form, a visit counter, /whoami and
// /healthz.
//
//	go run ./example
//
// It reads its settings from the environment:
//
//	DATABASE_URL    The PostgreSQL server to keep sessions in, for example
//	                postgres://app@db.internal:5432/app. When it is unset, the
//	                app looks for a server on localhost (PGHOST, PGPORT, PGUSER
//	                and PGDATABASE adjust where), then starts a throwaway
//	                cluster if the PostgreSQL binaries are installed, and as a
//	                last resort keeps sessions in signed cookies. The log says
//	                which one it picked; every fallback is for development.
//	SESSION_SECRET  Signs the session cookie. A secret of 32 bytes or more is
//	                used as the key as it is; a shorter one is hashed with
//	                SHA-256 into a 32-byte key, which adds no strength, so use
//	                a long random value (openssl rand -base64 48). When unset
//	                in development, each run makes a random key, so sessions
//	                end when the process stops.
//	APP_ENV         "production" requires SESSION_SECRET and DATABASE_URL and
//	                marks the cookie Secure (sent over HTTPS only).
//	                Default: "development".
//	PORT            The port to listen on. Default: 8080.
//
// Endpoints:
//
//	GET  /         an HTML page: who is logged in, a visit counter, a form
//	POST /login    form field user (1 to 64 characters); redirects (303) to /
//	POST /logout   ends the session; redirects (303) to /, or answers 200
//	               {"user":null} when the request accepts application/json
//	GET  /whoami   {"user":"alice"} or {"user":null}
//	GET  /healthz  200 "ok", or 503 when the database does not answer
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownTimeout is how long in-flight requests get to finish on SIGINT or
// SIGTERM.
const shutdownTimeout = 10 * time.Second

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

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := newApp(ctx, cfg)
	if err != nil {
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
	log.Info("listening", "url", "http://localhost:"+port)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // from here on, a second Ctrl-C ends the process at once
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
