package pgstore_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/pgsessions/pgstore"
)

// Handling Get's errors in one place, a middleware in front of every handler
// that uses the session. ErrCorrupt (a row that cannot be decoded): log it
// and go on with the new, empty session. Any other error (the database could
// not be read): answer 503 and run no handler, so nothing saves over the
// user's session and an outage is never taken for a logout.
func Example_getErrors() {
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}, // openssl rand -base64 48, used as is
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	withSession := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := store.Get(r, "session")
			switch {
			case errors.Is(err, pgstore.ErrCorrupt):
				log.Printf("session row unreadable, going on with a new session: %v", err)
			case err != nil:
				log.Printf("load session: %v", err)
				w.Header().Set("Retry-After", "5")
				http.Error(w, "sessions are unavailable, try again shortly", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The same session withSession loaded, from the request's registry:
		// no second query, and its error was handled there.
		session, _ := store.Get(r, "session")
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visits: %d\n", n+1)
	})
	log.Fatal(http.ListenAndServe(":8080", withSession(mux)))
}
