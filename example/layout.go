package main

import (
	"bytes"
	"html/template"
	"net/http"
)

// layout is what every page shares: the head, with a viewport for phones
// and a little CSS. A page parses its own body into a clone of it (see
// newPage) and fills in "title" and "body".
var layout = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{template "title" .}}</title>
<style>
*,*::before,*::after{box-sizing:border-box}
body{margin:0 auto;max-width:42rem;padding:1rem;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
a{color:#0b5cad}
button{font:inherit;padding:.4rem .9rem;border:1px solid #8c959f;border-radius:.4rem;background:#fff;color:inherit;cursor:pointer}
button:hover{background:#eef1f4}
button.danger{border-color:#cf222e;color:#cf222e}
input{font:inherit;padding:.35rem .5rem;max-width:100%}
form{margin:.5rem 0}
.muted{color:#59636e;font-size:.875rem}
.notice{background:#dafbe1;border:1px solid #4ac26b;border-radius:.4rem;padding:.5rem .75rem}
.sessions{list-style:none;margin:0 0 1rem;padding:0}
.session{background:#fff;border:1px solid #d1d9e0;border-radius:.5rem;padding:.75rem 1rem;margin:0 0 .75rem}
.session.current{border-color:#0969da;box-shadow:0 0 0 1px #0969da}
.session h2{font-size:1.05rem;margin:0;display:flex;flex-wrap:wrap;align-items:center;gap:.5rem}
.badge{font-size:.75rem;font-weight:600;color:#fff;background:#0969da;border-radius:1rem;padding:.05rem .55rem}
.ua{margin:.25rem 0 0;overflow-wrap:anywhere}
.session dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.1rem .75rem;margin:.5rem 0 0}
.session dt{color:#59636e}
.session dd{margin:0;overflow-wrap:anywhere}
.session form{margin:.75rem 0 0}
</style>
</head>
<body>
{{template "body" .}}
</body>
</html>
`))

// newPage returns the page whose "title" and "body" templates are in body.
func newPage(name, body string) *template.Template {
	return template.Must(template.Must(layout.Clone()).New(name).Parse(body))
}

// render writes page, executed with data, as an uncacheable HTML page: it
// is rendered in full first, so that an error is a 500, not half a page.
func (a *app) render(w http.ResponseWriter, r *http.Request, page *template.Template, data any) {
	var b bytes.Buffer
	if err := page.ExecuteTemplate(&b, "layout", data); err != nil {
		a.serverError(w, r, "render page", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}
