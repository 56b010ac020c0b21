package bench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgsessions/pgstore"
)

// BenchmarkGrowth: Get and Save latency against tables of 10k, 100k and 1M
// rows. Every lookup is by primary key, so they should stay flat.
func BenchmarkGrowth(b *testing.B) {
	for _, rows := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			e := newBenchEnv(b, pgstore.Config{})
			insertRows(b, e.db, e.table, rows, time.Now().Add(time.Hour), "filler")
			if _, err := e.db.Exec(`VACUUM ANALYZE ` + e.table); err != nil {
				b.Fatal(err)
			}
			b.Run("Get", func(b *testing.B) {
				b.ReportAllocs()
				br := e.request(0)
				for i := 0; i < b.N; i++ {
					if s, err := e.st.New(br.reset(), cookieName); err != nil || s.IsNew {
						b.Fatal("Get failed")
					}
				}
			})
			b.Run("SaveModified", func(b *testing.B) {
				b.ReportAllocs()
				br := e.request(1)
				for i := 0; i < b.N; i++ {
					r := br.reset()
					s, _ := e.st.New(r, cookieName)
					s.Values["n"] = i
					if err := e.st.Save(r, newDiscard(), s); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
