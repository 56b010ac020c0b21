package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/sessions"
	"github.com/medama-io/go-useragent"

	"github.com/pgsessions/pgstore"
)

// maxHandleLen bounds the handle POST /sessions/end accepts, in bytes; a
// pgstore handle is 22.
const maxHandleLen = 64

// Messages of the sessions page after a sign-out, chosen by a query
// parameter of the redirect: fixed texts, so that a link cannot make the
// page say anything else.
const (
	endedMsg        = "Signed out that session."
	alreadyEndedMsg = "That session had already ended."
)

var sessionsPage = newPage("sessions", `{{define "title"}}Your sessions · pgstore example{{end}}
{{define "body"}}<p><a href="/">← Home</a></p>
<h1>Your sessions</h1>
<p>Where <strong>{{.User}}</strong> is signed in. Sign out a session you don't recognise.</p>
{{with .Notice}}<p class="notice" role="status">{{.}}</p>
{{end -}}
<ul class="sessions">
{{- range .Sessions}}
<li class="session{{if .Current}} current{{end}}">
<h2>{{.Browser}}{{if .Current}} <span class="badge">This device</span>{{end}}</h2>
{{with .UserAgent}}<p class="ua muted">{{.}}</p>
{{end -}}
<dl>
<dt>IP address</dt><dd>{{or .IP "unknown"}}</dd>
<dt>Signed in</dt><dd>{{template "time" .SignedIn}}</dd>
<dt>Last active</dt><dd>{{template "time" .LastActive}}</dd>
<dt>Expires</dt><dd>{{template "time" .Expires}}</dd>
</dl>
{{- if not .Current}}
<form method="post" action="/sessions/end">
<input type="hidden" name="handle" value="{{.Handle}}">
<button class="danger">Sign out</button>
</form>
{{- end}}
</li>
{{- end}}
</ul>
{{if .Others}}<form method="post" action="/sessions/others"><button class="danger">Sign out all other sessions</button></form>
{{else}}<p class="muted">You are signed in nowhere else.</p>
{{end -}}
<p class="muted">Activity is recorded at most once per {{.Precision}}, so “last active” is no more exact than that. The browser and IP address are those of the sign-in. Times are in UTC.</p>
{{end}}
{{define "time"}}{{if .At.IsZero}}{{.Text}}{{else}}<time datetime="{{.At.Format "2006-01-02T15:04:05Z07:00"}}">{{.Text}}</time>{{end}}{{end}}`)

// sessionView is one session as the page shows it. It never holds the ID.
type sessionView struct {
	Handle                        string // for the sign-out form
	Current                       bool
	Browser, UserAgent, IP        string
	SignedIn, LastActive, Expires timeText
}

// timeText is a time and how the page says it; At is zero when the time is
// unknown or never comes.
type timeText struct {
	At   time.Time
	Text string
}

// sessionsPage lists the logged-in user's sessions, this one marked, each
// other with a button that signs it out.
func (a *app) sessionsPage(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedInPG(w, r)
	if !ok {
		return
	}
	// Keep the session from expiring while it is in use, as /whoami does;
	// Save sets the cookie, so it comes before anything is written.
	if err := s.Save(r, w); err != nil {
		a.serverError(w, r, "save session", err)
		return
	}
	infos, err := a.storage.pg.ListSessions(r.Context(), userKey, user, s)
	if err != nil {
		a.unavailable(w, r, "list sessions", err)
		return
	}
	// This device first, then the others, the most recently active first
	// (ListSessions' order).
	now := time.Now()
	views := make([]sessionView, 0, len(infos))
	others := 0
	for _, info := range infos {
		if !info.Current {
			others++
		}
		views = append(views, viewSession(info, now))
	}
	slices.SortStableFunc(views, func(a, b sessionView) int {
		switch {
		case a.Current == b.Current:
			return 0
		case a.Current:
			return -1
		default:
			return 1
		}
	})
	a.render(w, r, sessionsPage, struct {
		User      string
		Notice    string
		Sessions  []sessionView
		Others    bool
		Precision string
	}{user, notice(r.URL.Query()), views, others > 0, per(touchInterval)})
}

// endSession signs out the session that the form field handle names, if it
// is the logged-in user's, and goes back to the sessions page.
func (a *app) endSession(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	handle := r.PostForm.Get("handle")
	if handle == "" || len(handle) > maxHandleLen {
		http.Error(w, "handle must name a session", http.StatusBadRequest)
		return
	}
	_, user, ok := a.loggedInPG(w, r)
	if !ok {
		return
	}
	ended, err := a.storage.pg.EndSession(r.Context(), userKey, user, handle)
	if err != nil {
		a.unavailable(w, r, "end a session", err)
		return
	}
	http.Redirect(w, r, "/sessions?ended="+strconv.FormatBool(ended), http.StatusSeeOther)
}

// endOtherSessions signs out every session of the logged-in user but this
// one ("sign out everywhere else") and goes back to the sessions page.
func (a *app) endOtherSessions(w http.ResponseWriter, r *http.Request) {
	s, user, ok := a.loggedInPG(w, r)
	if !ok {
		return
	}
	n, err := a.storage.pg.RevokeOthers(r.Context(), userKey, user, s)
	if err != nil {
		a.unavailable(w, r, "end the other sessions", err)
		return
	}
	http.Redirect(w, r, "/sessions?others="+strconv.FormatInt(n, 10), http.StatusSeeOther)
}

// loggedInPG returns the request's session and its user. When the storage
// cannot list sessions (the development cookie store), nobody is logged
// in, or the session cannot be read, it answers the request instead and
// returns false. A visitor who is not logged in goes to the home page and
// its login form.
func (a *app) loggedInPG(w http.ResponseWriter, r *http.Request) (*sessions.Session, string, bool) {
	if a.storage.pg == nil {
		http.Error(w, "listing sessions needs PostgreSQL session storage (set DATABASE_URL)", http.StatusNotFound)
		return nil, "", false
	}
	s := a.session(w, r)
	if s == nil {
		return nil, "", false
	}
	user, ok := s.Values[userKey].(string)
	if s.IsNew || !ok || user == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil, "", false
	}
	return s, user, true
}

// notice is the message of the redirect after a sign-out, from its query.
func notice(q url.Values) string {
	if ended, err := strconv.ParseBool(q.Get("ended")); err == nil {
		if ended {
			return endedMsg
		}
		return alreadyEndedMsg
	}
	n, err := strconv.ParseInt(q.Get("others"), 10, 64)
	switch {
	case err != nil || n < 0:
		return ""
	case n == 0:
		return "There were no other sessions to sign out."
	case n == 1:
		return "Signed out 1 other session."
	default:
		return fmt.Sprintf("Signed out %d other sessions.", n)
	}
}

// viewSession is how the page shows info at now.
func viewSession(info pgstore.SessionInfo, now time.Time) sessionView {
	v := sessionView{
		Handle:    info.Handle,
		Current:   info.Current,
		Browser:   browserName(info.UserAgent),
		UserAgent: info.UserAgent,
		IP:        info.IP,
		SignedIn:  timeText{info.Created, "unknown"},
		Expires:   timeText{info.Expires, "never (until signed out)"},
	}
	if !info.Created.IsZero() {
		v.SignedIn.Text = info.Created.UTC().Format(dateTimeLayout)
	}
	if !info.Expires.IsZero() {
		v.Expires.Text = info.Expires.UTC().Format(dateTimeLayout)
	}
	v.LastActive = timeText{info.LastActive, lastActiveText(info.LastActive, now)}
	return v
}

// dateTimeLayout is how the page writes a time.
const dateTimeLayout = "2 Jan 2006, 15:04 UTC"

// browserName is "Chrome 131 on Windows" for a user agent the parser
// knows, and "Unknown browser" otherwise (the page shows the user agent in
// full below the name). useragent.NewParser builds its parser once, on
// first use.
func browserName(ua string) string {
	agent := useragent.NewParser().Parse(ua)
	browser, system := string(agent.Browser()), string(agent.OS())
	switch {
	case browser == "" && system == "":
		return "Unknown browser"
	case browser == "":
		return "A browser on " + system
	}
	if major := agent.BrowserVersionMajor(); major != "" {
		browser += " " + major
	}
	if system != "" {
		browser += " on " + system
	}
	return browser
}

// lastActiveText says when a session whose recorded activity is at was last
// used. The store records activity only when it moves the session's expiry,
// at most once per touchInterval, so the last request came between at and
// touchInterval after it: the text is no more exact than that.
func lastActiveText(at, now time.Time) string {
	if at.IsZero() {
		return "unknown"
	}
	age := now.Sub(at)
	switch {
	case age < touchInterval:
		return "within the last " + per(touchInterval)
	case age < time.Hour:
		return plural(int(age/time.Minute), "minute") + " ago"
	case age < 48*time.Hour:
		return plural(int(age/time.Hour), "hour") + " ago"
	default:
		return "on " + at.UTC().Format("2 Jan 2006")
	}
}

// per says d as in "once per minute" or "once per 5 minutes", in whole
// minutes.
func per(d time.Duration) string {
	if n := int(d / time.Minute); n > 1 {
		return strconv.Itoa(n) + " minutes"
	}
	return "minute"
}

// plural is "1 minute" or "5 minutes".
func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}
