package pgstore_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/pgsessions/pgstore"
)

// heldRequest is a Node request that has loaded its session and waits,
// before saving it, for release.
type heldRequest struct {
	app    *expressApp
	token  string
	body   *bufio.Reader
	loaded whoami
}

var holdSeq atomic.Int64

// hold sends POST /hold with the session cookie and returns once Node has
// loaded the session. With incr, the request changes the session before
// it saves it; without, it only reads it.
func (a *expressApp) hold(t *testing.T, cookie string, incr bool) *heldRequest {
	t.Helper()
	h := &heldRequest{app: a, token: fmt.Sprintf("hold-%d", holdSeq.Add(1))}
	path := "/hold?token=" + url.QueryEscape(h.token)
	if incr {
		path += "&incr=1"
	}
	req, err := http.NewRequest(http.MethodPost, a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", expressCookieName+"="+cookie)
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("node POST /hold: %v\nstderr:\n%s", err, a.stderr)
	}
	t.Cleanup(func() { resp.Body.Close() })
	h.body = bufio.NewReader(resp.Body)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(h.body)
		t.Fatalf("node POST /hold: status %d: %s\nstderr:\n%s", resp.StatusCode, body, a.stderr)
	}
	h.loaded = h.line(t)
	return h
}

func (h *heldRequest) line(t *testing.T) whoami {
	t.Helper()
	line, err := h.body.ReadBytes('\n')
	if err != nil {
		t.Fatalf("node /hold: read: %v (got %q)\nstderr:\n%s", err, line, h.app.stderr)
	}
	var w struct {
		whoami
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &w); err != nil || w.Error != "" {
		t.Fatalf("node /hold answered %s (%v)", line, err)
	}
	return w.whoami
}

// release lets the request save its session and returns what it saved,
// once the response has ended (express-session ends it after the save).
func (h *heldRequest) release(t *testing.T) whoami {
	t.Helper()
	h.app.call(t, http.MethodPost, "/release?token="+url.QueryEscape(h.token), "", nil)
	saved := h.line(t)
	if rest, err := io.ReadAll(h.body); err != nil || len(rest) != 0 {
		t.Fatalf("node /hold: after the answer: %q, %v", rest, err)
	}
	return saved
}

// A Node request in flight when Go ends its session (logout,
// Regenerate, Revoke, RevokeOthers), or when Node's own logout does, saves
// after the end: connect-pg-simple's upsert would insert the session
// again, and the old cookie would log in on both sides. With resave false
// the request changes the session (an unchanged one is only touched, an
// UPDATE); with resave true it only reads it, and is saved all the same.
func TestExpressLogoutFinalAgainstNodeInFlight(t *testing.T) {
	t.Parallel()
	for _, resave := range []bool{false, true} {
		t.Run(fmt.Sprintf("resave=%v", resave), func(t *testing.T) {
			t.Parallel()
			schema := expressSchema(t)
			node := startExpress(t, schema, expressOptions{secrets: []string{newSecret}, resave: resave})
			zone := nodeTimeZone(t)
			eachDriverInTurn(t, func(t *testing.T, drv string, db *sql.DB) {
				st := newExpressStore(t, db, schema, []string{newSecret})
				ctx := context.Background()
				ends := []struct {
					name string
					// end ends the session of cookie and returns a cookie
					// that must still log user in, if any.
					end func(t *testing.T, cookie, user string) string
				}{
					{"Go logout", func(t *testing.T, cookie, _ string) string {
						r, s := goGet(t, st, cookie)
						s.Options.MaxAge = -1
						goSave(t, st, r, s)
						return ""
					}},
					{"Go regenerate", func(t *testing.T, cookie, _ string) string {
						r, s := goGet(t, st, cookie)
						w := httptest.NewRecorder()
						if err := st.Regenerate(r, w, s); err != nil {
							t.Fatalf("Regenerate: %v", err)
						}
						return responseCookie(w, expressCookieName).Value
					}},
					{"Go revoke", func(t *testing.T, _, user string) string {
						if n, err := st.Revoke(ctx, "user", user); err != nil || n != 1 {
							t.Fatalf("Revoke: %d, %v", n, err)
						}
						return ""
					}},
					{"Go revoke others", func(t *testing.T, _, user string) string {
						keep := goLogin(t, st, user)
						_, s := goGet(t, st, keep)
						if n, err := st.RevokeOthers(ctx, "user", user, s); err != nil || n != 1 {
							t.Fatalf("RevokeOthers: %d, %v", n, err)
						}
						return keep
					}},
					{"Node logout", func(t *testing.T, cookie, _ string) string {
						node.call(t, http.MethodPost, "/logout", cookie, nil)
						return ""
					}},
				}
				for i, e := range ends {
					t.Run(e.name, func(t *testing.T) {
						user := fmt.Sprintf("%s-%d-%s", drv, i, map[bool]string{false: "a", true: "b"}[resave])
						cookie, sid := node.login(t, user)
						held := node.hold(t, cookie, !resave)
						if held.loaded.User != user {
							t.Fatalf("the held request loaded %v, want %s", held.loaded.User, user)
						}
						survivor := e.end(t, cookie, user)
						if saved := held.release(t); saved.User != user {
							t.Errorf("the held request saved %v, want %s", saved.User, user)
						}

						if _, ok := readRow(t, db, schema, zone, sid); ok {
							t.Errorf("the ended session's row is back")
						}
						if w := node.whoami(t, cookie); w.User != nil || w.SID == sid {
							t.Errorf("Node logs the old cookie in again: %+v", w)
						}
						if _, s := goGet(t, st, cookie); !s.IsNew || len(s.Values) != 0 {
							t.Errorf("Go logs the old cookie in again: %v", s.Values)
						}
						if survivor != "" {
							if w := node.whoami(t, survivor); w.User != user {
								t.Errorf("Node with the session that lives on: %+v", w)
							}
							if _, s := goGet(t, st, survivor); s.IsNew || s.Values["user"] != user {
								t.Errorf("Go with the session that lives on: %v", s.Values)
							}
						}
					})
				}
			})
		})
	}
}

var _ = pgstore.DefaultTableName
