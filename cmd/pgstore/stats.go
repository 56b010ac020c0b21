package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/pgsessions/pgstore"
)

var statsCommand = &command{
	name:    "stats",
	args:    "[-json] [flags]",
	summary: "report the table's rows, live and expired, sizes and oldest session",
	doc: `Reports what the sessions table holds: how many rows, how many are live and
how many expired (by the database's clock; prune deletes those), the size of
the sess column in total and for the largest session (compare it with
Config.MaxLength), the table's size on disk with its indexes, when the
oldest live session was created (of those pgstore wrote, which record it;
rows written only by Node do not), and when the next live session expires.

It runs one read-only query, which reads the whole table. -json prints the
same as one JSON object, with sizes in bytes and times in RFC 3339 (null
when there is none).
`,
	flags: func(fs *flag.FlagSet, o *common) func(context.Context, io.Writer) error {
		asJSON := fs.Bool("json", false, "print one JSON object instead of text")
		return func(ctx context.Context, stdout io.Writer) error {
			st, err := o.open(ctx, false, pgstore.Config{})
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := readStats(ctx, st.DB(), qualified(o.schema, o.table), qualified(o.schema, "pgstore_sess_text"), o.timeZone)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			s.print(stdout)
			return nil
		}
	},
}

// stats is what the stats command reports.
type stats struct {
	Table            string     `json:"table"`
	Rows             int64      `json:"rows"`
	Live             int64      `json:"live"`
	Expired          int64      `json:"expired"`
	SessBytes        int64      `json:"sess_bytes"`
	LargestSessBytes int64      `json:"largest_sess_bytes"`
	TableBytes       int64      `json:"table_bytes"`
	OldestCreated    *time.Time `json:"oldest_created"`
	NextExpiry       *time.Time `json:"next_expiry"`
}

// statsSQL reads table once. expire is wall-clock time in the store's
// zone ($1); a row is live while expire >= now() there, as the store judges
// it. The sizes are of sess as text, what Config.MaxLength bounds. created
// counts when it is a positive whole number, as the store reads it; rows
// of other writers may hold anything there. It reads inside sess through
// sessText, the function the store installs (pgstore_sess_text), because
// -> and ->> fail on the whole table when one row holds a \u0000.
func statsSQL(table, sessText string) string {
	meta := sessText + "(sess, '_pgstore')::json"
	return `SELECT count(*),
	count(*) FILTER (WHERE expire >= now() AT TIME ZONE $1),
	coalesce(sum(octet_length(sess::text)), 0),
	coalesce(max(octet_length(sess::text)), 0),
	pg_total_relation_size($2::regclass),
	min(CASE WHEN json_typeof(` + meta + ` -> 'created') = 'number'
		AND ` + meta + ` ->> 'created' ~ '^[1-9][0-9]{0,14}$'
		THEN (` + meta + ` ->> 'created')::float8 END) FILTER (WHERE expire >= now() AT TIME ZONE $1),
	date_part('epoch', min(expire) FILTER (WHERE expire >= now() AT TIME ZONE $1) AT TIME ZONE $1)
FROM ` + table
}

func readStats(ctx context.Context, db *sql.DB, table, sessText, timeZone string) (stats, error) {
	s := stats{Table: table}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("read %s: %w", table, err)
	}
	defer tx.Rollback() //nolint:errcheck // read only: nothing to commit
	var created, next sql.NullFloat64
	err = tx.QueryRowContext(ctx, statsSQL(table, sessText), timeZone, table).Scan(
		&s.Rows, &s.Live, &s.SessBytes, &s.LargestSessBytes, &s.TableBytes, &created, &next)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", table, err)
	}
	s.Expired = s.Rows - s.Live
	s.OldestCreated = epochTime(created)
	s.NextExpiry = epochTime(next)
	return s, nil
}

// epochTime turns epoch seconds into a time, nil for none or 'infinity'.
func epochTime(sec sql.NullFloat64) *time.Time {
	if !sec.Valid || math.IsInf(sec.Float64, 0) || math.IsNaN(sec.Float64) {
		return nil
	}
	t := time.UnixMicro(int64(math.Round(sec.Float64 * 1e6))).UTC()
	return &t
}

func (s stats) print(w io.Writer) {
	when := func(t *time.Time) string {
		if t == nil {
			return "none"
		}
		return t.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "table            %s\n", s.Table)
	fmt.Fprintf(w, "rows             %d\n", s.Rows)
	fmt.Fprintf(w, "live             %d\n", s.Live)
	fmt.Fprintf(w, "expired          %d (prune deletes them)\n", s.Expired)
	fmt.Fprintf(w, "sess size        %s in total, %s the largest\n", bytesText(s.SessBytes), bytesText(s.LargestSessBytes))
	fmt.Fprintf(w, "table on disk    %s with its indexes\n", bytesText(s.TableBytes))
	fmt.Fprintf(w, "oldest created   %s\n", when(s.OldestCreated))
	fmt.Fprintf(w, "next expiry      %s\n", when(s.NextExpiry))
}

// bytesText writes n bytes for people: 512 B, 1.5 KiB, 3.2 MiB.
func bytesText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}
