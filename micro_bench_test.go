package pgstore

import (
	"testing"
	"time"

	"github.com/gorilla/sessions"
)

// The store's own work on the Get and Save paths, without the database:
// what is left of a request once the queries are taken away.
//
//	go test -run '^$' -bench 'Sess|CookieVerify' -benchmem .

// benchSess is a sess column as BenchmarkStore's sessions store it.
var benchSess = []byte(`{"_pgstore":{"created":1764230400},"csrf":"0123456789abcdef0123456789abcdef","user":"user1@example.com","user_id":1001}`)

func BenchmarkSessDecode(b *testing.B) {
	st := &Store{cfg: settings{codec: JSONCodec{}, options: *DefaultOptions()}, row: nativeRow{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		values := make(map[any]any)
		var m meta
		if err := st.decode(benchSess, values, &m); err != nil || len(values) != 3 || m.created == 0 {
			b.Fatalf("decode: %v, %d values, meta %+v", err, len(values), m)
		}
	}
}

func BenchmarkCookieVerify(b *testing.B) {
	f := newSecureCookieFormat([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	const id = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	v, err := f.encode("session", id)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if got, _, ok := f.decode("session", v); !ok || got != id {
			b.Fatalf("decode: %q, %v", got, ok)
		}
	}
}

func BenchmarkSessEncode(b *testing.B) {
	st := &Store{cfg: settings{codec: JSONCodec{}, options: *DefaultOptions()}, row: nativeRow{}}
	s := sessions.NewSession(st, "session")
	s.Options = DefaultOptions()
	s.Values = map[any]any{"csrf": "0123456789abcdef0123456789abcdef", "user": "user1@example.com", "user_id": 1001}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := st.encode(s, meta{created: 1764230400}, time.Time{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessEncodeLoaded encodes a loaded session for Save: unchanged
// (the row as stored comes back), and with one value changed. In Express
// mode a changed session also keeps the stored text of the values the
// application did not touch, which costs a parse of the stored row.
func BenchmarkSessEncodeLoaded(b *testing.B) {
	for _, format := range []struct {
		name string
		row  rowFormat
	}{{"native", nativeRow{}}, {"express", expressRow{}}} {
		st := &Store{cfg: settings{codec: JSONCodec{}, byteStable: true, options: *DefaultOptions()}, row: format.row}
		s := sessions.NewSession(st, "session")
		s.Options = DefaultOptions()
		m := meta{}
		stored, err := st.encode(&sessions.Session{Values: map[any]any{"csrf": "0123456789abcdef0123456789abcdef",
			"user": "user1@example.com", "user_id": 1001}, Options: DefaultOptions()}, meta{created: 1764230400}, time.Time{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.decode(stored, s.Values, &m); err != nil {
			b.Fatal(err)
		}
		b.Run(format.name+"/unchanged", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if out, err := st.encode(s, m, m.cookie.expires, stored); err != nil || len(out) != len(stored) {
					b.Fatalf("%s, %v", out, err)
				}
			}
		})
		b.Run(format.name+"/changed", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s.Values["user_id"] = 1000 + i%9
				if _, err := st.encode(s, m, m.cookie.expires, stored); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
