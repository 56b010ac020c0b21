module github.com/pgsessions/pgstore/bench

go 1.23.0

replace github.com/pgsessions/pgstore => ../

require (
	github.com/alexedwards/scs/postgresstore v0.0.0-20251002162104-209de6e426de
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/lib/pq v1.12.3
	github.com/pgsessions/pgstore v0.0.0-00010101000000-000000000000
)

require (
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/gorilla/sessions v1.4.0 // indirect
)
