package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/lib/pq"
	"github.com/pgsessions/pgstore"
)

// serveMain runs one Go server in this process; the driver starts it as a
// child (this binary with "serve -kind KIND") so that each server has its
// own process, heap and CPU accounting. It prints "listening ADDR DEBUGADDR".
func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kind := fs.String("kind", "", "server kind: pgstore, pgstore-open, floor, scs, pgstore-pooler or floor-pooler")
	dsn := fs.String("dsn", "", "PostgreSQL DSN")
	schema := fs.String("schema", "", "schema holding the server's table")
	pool := fs.Int("pool", 4, "max open (and idle) connections; pgstore-open keeps Open's own")
	if err := fs.Parse(args); err != nil {
		return err
	}

	var trips atomic.Int64
	counted := true // whether trips counts the server's round trips
	var app http.Handler
	if *kind == "pgstore-open" {
		// pgstore.Open opens its own pool, with its own settings: this
		// server is there to measure them, so neither -pool nor the
		// counting dialer applies.
		counted = false
		store, err := openPgstore(*dsn, *schema)
		if err != nil {
			return err
		}
		defer store.Close()
		app = pgstoreHandler(store)
	} else {
		connector, err := pq.NewConnector(*dsn)
		if err != nil {
			return err
		}
		connector.Dialer(countingDialer{trips: &trips})
		db := sql.OpenDB(connector)
		defer db.Close()
		db.SetMaxOpenConns(*pool)
		db.SetMaxIdleConns(*pool)

		switch *kind {
		case "pgstore", "pgstore-pooler":
			store, err := newPgstore(db, *schema, *kind == "pgstore-pooler")
			if err != nil {
				return err
			}
			defer store.Close()
			app = pgstoreHandler(store)
		case "floor", "floor-pooler":
			h, err := floorApp(db, *schema, *kind == "floor-pooler")
			if err != nil {
				return err
			}
			app = h
		case "scs":
			app = scsApp(db)
		default:
			return fmt.Errorf("unknown server kind %q", *kind)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	debug := http.NewServeMux()
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	debug.HandleFunc("/debug/pprof/profile", pprof.Profile)
	debug.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	debug.HandleFunc("/debug/roundtrips", func(w http.ResponseWriter, r *http.Request) {
		if !counted {
			http.Error(w, "round trips are not counted for this server", http.StatusNotFound)
			return
		}
		io.WriteString(w, strconv.FormatInt(trips.Load(), 10))
	})
	// Requests sent while the store is set up are not the workload's.
	trips.Store(0)

	srv := &http.Server{Handler: app, ErrorLog: log.New(os.Stderr, *kind+": ", 0)}
	dsrv := &http.Server{Handler: debug}
	go dsrv.Serve(dln)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening %s %s\n", ln.Addr(), dln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dsrv.Close()
	return srv.Shutdown(ctx)
}

// countingDialer counts writes on every connection to PostgreSQL. lib/pq
// sends each round trip's messages in one write and then waits for the
// answer, so writes are round trips.
type countingDialer struct{ trips *atomic.Int64 }

func (d countingDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d countingDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, trips: d.trips}, nil
}

type countingConn struct {
	net.Conn
	trips *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.trips.Add(1)
	return c.Conn.Write(p)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, s)
}

func serverError(w http.ResponseWriter, what string, err error) {
	log.Printf("%s: %v", what, err)
	writeText(w, http.StatusInternalServerError, what+": "+err.Error())
}

// newPgstore is pgstore with default settings on a pool set up by the
// caller (the tuned one, -pool connections kept open and idle); with
// pooler, Config.TransactionPooler too, for a db that reaches PostgreSQL
// through a transaction-mode PgBouncer.
func newPgstore(db *sql.DB, schema string, pooler bool) (*pgstore.Store, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	return pgstore.New(db, pgstore.Config{KeyPairs: [][]byte{key}, SchemaName: schema, TransactionPooler: pooler})
}

// openPgstore is pgstore as a newcomer starts it: pgstore.Open, with the
// pool it opens left as it is.
func openPgstore(dsn, schema string) (*pgstore.Store, error) {
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	return pgstore.Open(dsn, pgstore.Config{KeyPairs: [][]byte{key}, SchemaName: schema})
}

func randomKey() ([]byte, error) {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	return key, err
}

// pgstoreHandler is a gorilla/sessions application on store. Like most
// gorilla apps, every handler calls Save, changed or not: the store decides
// whether anything is written.
func pgstoreHandler(store *pgstore.Store) http.Handler {
	const name = "session"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, name)
		if err != nil {
			serverError(w, "load session", err)
			return
		}
		user := r.URL.Query().Get("user")
		s.Values["user"] = user
		if err := s.Save(r, w); err != nil {
			serverError(w, "save session", err)
			return
		}
		writeText(w, http.StatusOK, user)
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, name)
		if err != nil {
			serverError(w, "load session", err)
			return
		}
		user, ok := s.Values["user"].(string)
		if !ok {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		if err := s.Save(r, w); err != nil {
			serverError(w, "save session", err)
			return
		}
		writeText(w, http.StatusOK, user)
	})
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, name)
		if err != nil {
			serverError(w, "load session", err)
			return
		}
		if _, ok := s.Values["user"].(string); !ok {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		n, _ := s.Values["counter"].(int)
		n++
		s.Values["counter"] = n
		if err := s.Save(r, w); err != nil {
			serverError(w, "save session", err)
			return
		}
		writeText(w, http.StatusOK, strconv.Itoa(n))
	})
	return mux
}

// floorSess is all the floor server keeps in sess.
type floorSess struct {
	User    string `json:"user"`
	Counter int    `json:"counter"`
}

// floorStmt is one of the floor's statements: prepared (on each
// connection, under a name lib/pq gives it), or with oneShot sent as a
// query of its own each time, for a transaction pooler that may run the
// next statement on a server connection that does not know the name. With
// lib/pq's binary_parameters=yes, a one-shot query with parameters is one
// round trip, as a prepared statement's execution is.
type floorStmt struct {
	db    *sql.DB
	query string
	stmt  *sql.Stmt // nil: one-shot
}

func prepareFloor(db *sql.DB, query string, oneShot bool) (floorStmt, error) {
	s := floorStmt{db: db, query: query}
	if oneShot {
		return s, nil
	}
	var err error
	s.stmt, err = db.PrepareContext(context.Background(), query)
	return s, err
}

func (s floorStmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	if s.stmt == nil {
		return s.db.QueryRowContext(ctx, s.query, args...)
	}
	return s.stmt.QueryRowContext(ctx, args...)
}

func (s floorStmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	if s.stmt == nil {
		return s.db.ExecContext(ctx, s.query, args...)
	}
	return s.stmt.ExecContext(ctx, args...)
}

// floorApp is the least a session-backed handler can do: the cookie is the
// row's sid (no signing), one prepared SELECT per request and, for writes,
// one prepared UPDATE. It has no expiry check, no change detection and no
// protection against forged cookies; it is a floor, not a store. With
// oneShot (floor-pooler) the same statements go unprepared, one round trip
// each all the same (see floorStmt).
func floorApp(db *sql.DB, schema string, oneShot bool) (http.Handler, error) {
	table := pq.QuoteIdentifier(schema) + ".user_sessions"
	load, err := prepareFloor(db, "SELECT sess FROM "+table+" WHERE sid = $1", oneShot)
	if err != nil {
		return nil, err
	}
	update, err := prepareFloor(db, "UPDATE "+table+" SET sess = $2 WHERE sid = $1", oneShot)
	if err != nil {
		return nil, err
	}
	insert, err := prepareFloor(db, "INSERT INTO "+table+
		" (sid, sess, expire) VALUES ($1, $2, now() + interval '30 days')", oneShot)
	if err != nil {
		return nil, err
	}
	const name = "sid"
	get := func(r *http.Request) (string, []byte, error) {
		c, err := r.Cookie(name)
		if err != nil {
			return "", nil, nil
		}
		var raw []byte
		err = load.QueryRowContext(r.Context(), c.Value).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, nil
		}
		return c.Value, raw, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			serverError(w, "new id", err)
			return
		}
		sid := base64.RawURLEncoding.EncodeToString(b)
		user := r.URL.Query().Get("user")
		sess, _ := json.Marshal(floorSess{User: user})
		if _, err := insert.ExecContext(r.Context(), sid, string(sess)); err != nil {
			serverError(w, "insert session", err)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: sid, Path: "/", HttpOnly: true})
		writeText(w, http.StatusOK, user)
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		_, raw, err := get(r)
		if err != nil {
			serverError(w, "load session", err)
			return
		}
		var s floorSess
		if raw == nil || json.Unmarshal(raw, &s) != nil || s.User == "" {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		writeText(w, http.StatusOK, s.User)
	})
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		sid, raw, err := get(r)
		if err != nil {
			serverError(w, "load session", err)
			return
		}
		var s floorSess
		if raw == nil || json.Unmarshal(raw, &s) != nil || s.User == "" {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		s.Counter++
		sess, _ := json.Marshal(s)
		if _, err := update.ExecContext(r.Context(), sid, string(sess)); err != nil {
			serverError(w, "update session", err)
			return
		}
		writeText(w, http.StatusOK, strconv.Itoa(s.Counter))
	})
	return mux, nil
}

// scsApp is alexedwards/scs with its postgresstore, set up as its README
// shows: scs.New(), postgresstore.New(db) and the LoadAndSave middleware.
// The store's queries name the table "sessions", found through the
// connection's search_path (set in the DSN by the driver).
func scsApp(db *sql.DB) http.Handler {
	sm := scs.New()
	sm.Store = postgresstore.New(db)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		sm.Put(r.Context(), "user", user)
		writeText(w, http.StatusOK, user)
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		user := sm.GetString(r.Context(), "user")
		if user == "" {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		writeText(w, http.StatusOK, user)
	})
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		if sm.GetString(r.Context(), "user") == "" {
			writeText(w, http.StatusUnauthorized, "no session")
			return
		}
		n := sm.GetInt(r.Context(), "counter") + 1
		sm.Put(r.Context(), "counter", n)
		writeText(w, http.StatusOK, strconv.Itoa(n))
	})
	return sm.LoadAndSave(mux)
}
