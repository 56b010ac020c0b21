package pgstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	_ "github.com/lib/pq"

	"github.com/pgsessions/pgstore"
)

// The quick start: open a store (and its tuned pool), use it as any
// gorilla store.
func Example() {
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}, // openssl rand -base64 48, used as is
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, "session")
		if err != nil && !errors.Is(err, pgstore.ErrCorrupt) {
			http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
			return
		}
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visits: %d\n", n+1)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// The cookie defaults, changed for plain-HTTP development. Start from
// DefaultOptions when you set Config.Options, which is used as given.
func ExampleDefaultOptions() {
	opts := pgstore.DefaultOptions()
	opts.Secure = false // development over http://, not localhost
	fmt.Println("Path:", opts.Path)
	fmt.Println("MaxAge:", opts.MaxAge, "=", time.Duration(opts.MaxAge)*time.Second)
	fmt.Println("HttpOnly:", opts.HttpOnly, "Secure:", opts.Secure)
	fmt.Println("SameSite Lax:", opts.SameSite == http.SameSiteLaxMode)
	// Output:
	// Path: /
	// MaxAge: 2592000 = 720h0m0s
	// HttpOnly: true Secure: false
	// SameSite Lax: true
}

// New checks the Config before it sends anything to the database, and its
// errors name the field at fault and wrap ErrConfig.
func ExampleNew_configError() {
	db, err := sql.Open("postgres", "") // a pool that has not connected yet
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, cfg := range []pgstore.Config{
		{KeyPairs: [][]byte{[]byte("a passphrase, not a key")}},
		{ExpressSecrets: []string{"s3cret"}, HashIDs: true},
	} {
		_, err := pgstore.New(db, cfg)
		fmt.Println(errors.Is(err, pgstore.ErrConfig), err)
	}
	// Output:
	// true pgstore: invalid config: Config.KeyPairs[0] hash key is 23 bytes; it must be at least 32
	// true pgstore: invalid config: Config.HashIDs cannot be combined with ExpressSecrets: Node looks sessions up by their raw ID
}

// Rotating keys: the new key signs, the retired one only verifies, until
// every cookie it signed has been re-signed at a touch or has expired (see
// docs/security.md). Never write KeyPairs{new, old}: gorilla's pairs would
// take old for new's block key and log everyone out; that form is
// KeyPairs{new, nil, old}.
func ExampleConfig_keyRotation() {
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs:    [][]byte{[]byte(os.Getenv("SESSION_SECRET"))},
		RetiredKeys: []pgstore.KeyPair{{HashKey: []byte(os.Getenv("SESSION_SECRET_OLD"))}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}

// A table of your own, in a schema of your own, managed by migrations.
func ExampleConfig_customTable() {
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs:        [][]byte{[]byte(os.Getenv("SESSION_SECRET"))},
		SchemaName:      "auth",
		TableName:       "web_sessions",
		SkipCreateTable: true, // created by a migration from schema.sql
		TouchInterval:   5 * time.Minute,
		AbsoluteTimeout: 7 * 24 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
}

// Express mode: share the table and the cookie with an Express app that
// uses express-session and connect-pg-simple. Use the same secrets, cookie
// name ("connect.sid" by default) and maxAge on both sides.
func ExampleConfig_express() {
	opts := pgstore.DefaultOptions()
	opts.MaxAge = 30 * 24 * 3600 // cookie.maxAge on the Node side, in seconds
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		ExpressSecrets: []string{os.Getenv("SESSION_SECRET")},
		TableName:      "user_sessions",
		Options:        opts,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, "connect.sid")
		user, _ := session.Values["user"].(string) // set by Node's req.session.user
		fmt.Fprintln(w, user)
	})
}

// Logging out: MaxAge -1 deletes the row and expires the cookie.
func ExampleStore_Save_logout() {
	var store *pgstore.Store // from pgstore.New
	http.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, "session")
		session.Options.MaxAge = -1
		if err := session.Save(r, w); err != nil {
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
}

// A Save that finds its session logged out by another request returns
// ErrSessionNotFound: treat it as logged out.
func ExampleErrSessionNotFound() {
	var store *pgstore.Store // from pgstore.New
	http.HandleFunc("/cart", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, "session")
		session.Values["cart"] = []string{"book"}
		err := session.Save(r, w)
		switch {
		case errors.Is(err, pgstore.ErrSessionNotFound):
			http.Redirect(w, r, "/login", http.StatusSeeOther)
		case err != nil:
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
		}
	})
}

// Regenerate on login: the session moves to a fresh ID, so an ID planted
// before login is useless after it.
func ExampleStore_Regenerate() {
	var store *pgstore.Store // from pgstore.New
	http.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("user") // after checking the password
		session, _ := store.Get(r, "session")
		session.Values["user"] = user
		if err := store.Regenerate(r, w, session); err != nil { // writes the values too
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
}

// Revoking every session of a user, for example when an administrator
// locks the account.
func ExampleStore_Revoke() {
	var store *pgstore.Store // from pgstore.New
	n, err := store.Revoke(context.Background(), "user_id", 42)
	if err != nil {
		log.Print(err)
	}
	log.Printf("signed out of %d sessions", n)
}

// After a password change: a fresh ID for the session that proved the new
// password, then every other session of the user ends.
func ExampleStore_RevokeOthers() {
	var store *pgstore.Store // from pgstore.New
	http.HandleFunc("/password", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, "session")
		if err != nil {
			http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
			return
		}
		userID, _ := session.Values["user_id"].(int) // after changing the password
		if err := store.Regenerate(r, w, session); err != nil {
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
			return
		}
		if _, err := store.RevokeOthers(r.Context(), "user_id", userID, session); err != nil {
			log.Print(err) // details in the log, not to the client
			http.Error(w, "something went wrong", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "password changed; signed out everywhere else")
	})
}

// Pruning from cron instead of the background goroutine.
func ExampleStore_Prune() {
	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs:      [][]byte{[]byte(os.Getenv("SESSION_SECRET"))},
		PruneInterval: -1, // no background pruner
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	n, err := store.Prune(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("deleted %d expired sessions", n)
}
