// Package ginstore plugs pgstore into Gin through gin-contrib/sessions: New
// wraps a *pgstore.Store in the sessions.Store interface that
// sessions.Sessions and sessions.SessionsMany take. It is a module of its
// own, so that pgstore itself never requires Gin.
//
// Usage:
//
//	st, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
//		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}, // 32+ random bytes
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer st.Close()
//
//	r := gin.Default()
//	r.Use(sessions.Sessions("session", ginstore.New(st)))
//	r.POST("/login", func(c *gin.Context) {
//		s := sessions.Default(c)
//		s.Set("user", "alice") // after checking the password
//		if err := ginstore.Regenerate(c, s); err != nil { // a fresh ID on login
//			c.AbortWithStatus(http.StatusInternalServerError)
//		}
//	})
//
// Gin's Options replace every cookie attribute at once, and a zero field
// means "off": sessions.Options{MaxAge: 3600} alone drops pgstore's Path
// "/", HttpOnly, Secure and SameSite Lax. Set them all, starting from
// pgstore.DefaultOptions(). MaxAge 0 makes a browser-session cookie (the
// row lives Config.BrowserSessionTTL) and a negative MaxAge logs out: Save
// deletes the row and expires the cookie.
//
// Gin's session wrapper has no Regenerate and does not expose the
// session's ID-carrying *sessions.Session in its interface; Regenerate and
// Unwrap reach them, for pgstore's Store.Regenerate and Store.RevokeOthers.
package ginstore
