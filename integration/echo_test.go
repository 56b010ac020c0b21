package integration_test

// pgstore under Echo v4 with labstack/echo-contrib's session middleware,
// written as Echo applications use it: session.Get and Session.Save on
// the Echo context's request and response.

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo-contrib/session"
	"github.com/labstack/echo/v4"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	st, db := newStore(t)
	e := echo.New()
	e.Use(session.Middleware(st))
	e.GET("/visit", func(c echo.Context) error {
		s, err := session.Get("session", c)
		if err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		n, _ := s.Values["visits"].(int)
		s.Values["visits"] = n + 1
		return s.Save(c.Request(), c.Response())
	})
	e.POST("/login", func(c echo.Context) error {
		s, err := session.Get("session", c)
		if err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		s.Values["user"] = c.FormValue("user")
		// A login moves the session to a new ID (session fixation).
		return st.Regenerate(c.Request(), c.Response(), s)
	})
	e.GET("/whoami", func(c echo.Context) error {
		s, err := session.Get("session", c)
		if err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		return c.JSON(http.StatusOK, s.Values["user"])
	})
	e.POST("/logout", func(c echo.Context) error {
		s, err := session.Get("session", c)
		if err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		s.Options.MaxAge = -1
		return s.Save(c.Request(), c.Response())
	})
	srv := httptest.NewTLSServer(e)
	t.Cleanup(srv.Close)
	checkLoginFlow(t, newBrowser(t, srv), db, "session")
}
