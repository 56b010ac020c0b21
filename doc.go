// Package pgstore is a gorilla/sessions Store that keeps sessions in
// PostgreSQL, in the table layout of Node's connect-pg-simple
// (sid varchar primary key, sess json, expire timestamp). The cookie holds
// only a signed session ID; the values live in the sess column as JSON.
//
// Quick start:
//
//	store, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
//		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}, // 32+ random bytes
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer store.Close()
//
//	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
//		session, err := store.Get(r, "session")
//		if err != nil && !errors.Is(err, pgstore.ErrCorrupt) {
//			http.Error(w, "sessions unavailable", http.StatusServiceUnavailable)
//			return
//		}
//		n, _ := session.Values["visits"].(int)
//		session.Values["visits"] = n + 1
//		if err := session.Save(r, w); err != nil {
//			log.Printf("save session: %v", err) // details in the log, not to the client
//			http.Error(w, "could not save the session", http.StatusInternalServerError)
//			return
//		}
//		fmt.Fprintf(w, "visits: %d\n", n+1)
//	})
//
// SESSION_SECRET holds the output of openssl rand -base64 48 (64 characters),
// used as it is, never decoded, and the same on every instance. To rotate it,
// put the new key alone in Config.KeyPairs and the old one in
// Config.RetiredKeys.
//
// When Get returns an error, the session it returns is new and empty. If the
// error wraps ErrCorrupt, the row could not be decoded: go on with that
// session. Any other error means the database could not be read: answer 503
// and do not save, since the user may well be logged in. The package example
// getErrors does this once, in a middleware.
//
// New creates the table when it is missing, prepares its statements and
// starts a goroutine that deletes expired rows; Close stops it. Behind a
// transaction-mode pooler such as PgBouncer, set Config.TransactionPooler:
// the store then prepares nothing. New refuses a read-only replica
// (ErrReadOnly): sessions are read where they are written. Store.Stats
// returns counters for monitoring. With
// Config.ExpressSecrets set, the store reads and writes express-session's
// cookie and row format, so a Go service and an Express service share live
// sessions.
package pgstore
