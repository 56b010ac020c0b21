package integration_test

// pgstore under gin with gin-contrib/sessions, through ginstore, written as
// gin applications use it: sessions.Default(c), Set, Save; the login moves
// the session with ginstore.Regenerate.

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"

	"github.com/pgsessions/pgstore/ginstore"
)

func TestGin(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(sessions.Sessions("session", ginstore.New(st)))
	r.GET("/visit", func(c *gin.Context) {
		s := sessions.Default(c)
		n, _ := s.Get("visits").(int)
		s.Set("visits", n+1)
		if err := s.Save(); err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
			return
		}
		c.String(http.StatusOK, "ok")
	})
	r.POST("/login", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Set("user", c.PostForm("user"))
		if err := ginstore.Regenerate(c, s); err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
			return
		}
		c.String(http.StatusOK, "ok")
	})
	r.GET("/whoami", func(c *gin.Context) {
		c.JSON(http.StatusOK, sessions.Default(c).Get("user"))
	})
	r.POST("/logout", func(c *gin.Context) {
		s := sessions.Default(c)
		s.Clear()
		s.Options(sessions.Options{Path: "/", MaxAge: -1})
		if err := s.Save(); err != nil {
			c.String(http.StatusServiceUnavailable, err.Error())
			return
		}
		c.String(http.StatusOK, "ok")
	})
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	checkLoginFlow(t, newBrowser(t, srv), db, "session")
}
