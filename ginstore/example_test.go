package ginstore_test

import (
	"log"
	"net/http"
	"os"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"

	"github.com/pgsessions/pgstore"
	"github.com/pgsessions/pgstore/ginstore"
)

// A gin app with pgstore sessions: log in under a fresh session ID,
// remember me for 30 days, log out.
func Example() {
	st, err := pgstore.Open(os.Getenv("DATABASE_URL"), pgstore.Config{
		KeyPairs: [][]byte{[]byte(os.Getenv("SESSION_SECRET"))}, // openssl rand -base64 48, used as is
	})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	r := gin.Default()
	r.Use(sessions.Sessions("session", ginstore.New(st)))
	r.POST("/login", func(c *gin.Context) {
		// ... check the password ...
		s := sessions.Default(c)
		s.Set("user", c.PostForm("user"))
		if c.PostForm("remember") == "on" {
			// Gin's Options replace them all: start from pgstore's.
			o := pgstore.DefaultOptions()
			s.Options(sessions.Options{Path: o.Path, MaxAge: 30 * 24 * 60 * 60,
				Secure: o.Secure, HttpOnly: o.HttpOnly, SameSite: o.SameSite})
		}
		if err := ginstore.Regenerate(c, s); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.String(http.StatusOK, "welcome")
	})
	r.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Options(sessions.Options{Path: "/", MaxAge: -1}) // deletes the row
		if err := s.Save(); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.String(http.StatusOK, "bye")
	})
	log.Fatal(r.Run(":8080"))
}
