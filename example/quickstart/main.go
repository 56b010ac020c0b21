package main

import (
	"cmp"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/pgsessions/pgstore"
)

func main() {
	// Open opens a connection pool (lib/pq) and creates the sessions table
	// if it is missing. SESSION_SECRET signs the cookies: 32 bytes or more.
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))},
		Logger:   slog.Default(), // pgstore is silent without one
	})
	if err != nil {
		log.Fatal(err)
	}

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, "session")
		if err != nil && !errors.Is(err, pgstore.ErrCorrupt) {
			http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
			return
		}
		// A value makes the session worth keeping: Save writes a row and
		// sets a cookie. A real app stores one only when there is a reason
		// (a login, a cart), not for every visitor.
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			log.Printf("save session: %v", err) // details in the log, not to the client
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visits: %d\n", n+1)
	})

	addr := ":" + cmp.Or(os.Getenv("PORT"), "8080")
	log.Printf("listening on %s", addr)
	err = http.ListenAndServe(addr, nil) // returns only on failure
	store.Close()
	log.Fatal(err)
}
