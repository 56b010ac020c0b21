package pgcluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "github.com/lib/pq" // driver "postgres", to watch replication
)

// standbyName is the standby's application_name, which the primary's
// synchronous_standby_names names.
const standbyName = "pgcluster_standby"

// syncTimeout bounds the wait for a new standby to stream synchronously.
const syncTimeout = time.Minute

// Replicated is a primary cluster and a hot standby streaming from it with
// synchronous replication: the primary acknowledges a commit only once the
// standby has flushed it, so a crash of the primary loses no acknowledged
// transaction once the standby is promoted. Tests use it to fail over.
//
// The promoted standby commits on its own: synchronous_standby_names is set
// on the primary's command line, not in the configuration the standby
// copies, so that the new primary does not wait forever for a standby it
// does not have.
type Replicated struct {
	Primary, Standby *Cluster
}

// StartReplicated starts a primary (initdb) and a standby copied from it
// with pg_basebackup -R, each on a free port, and returns once the standby
// streams and the primary counts it as synchronous. Remove stops both and
// deletes their files.
func StartReplicated() (*Replicated, error) {
	primary, err := newCluster()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(toolPath(primary.bin, "pg_basebackup")); err != nil {
		primary.removeFiles()
		return nil, fmt.Errorf("%w (pg_basebackup is missing next to %s)", ErrNoBinaries, primary.bin)
	}
	if err := primary.initdb(); err != nil {
		primary.removeFiles()
		return nil, err
	}
	// Streaming replication from 127.0.0.1 without a password (initdb's
	// trust configuration allows it already; say so rather than rely on it).
	if err := appendFile(filepath.Join(primary.data(), "pg_hba.conf"), "host replication all 127.0.0.1/32 trust\n"); err != nil {
		primary.removeFiles()
		return nil, err
	}
	primary.settings = []string{
		"wal_level=replica",
		"max_wal_senders=4",
		"hot_standby=on",
		"synchronous_standby_names=" + standbyName,
		"synchronous_commit=on",
	}
	if err := primary.Start(); err != nil {
		primary.removeFiles()
		return nil, err
	}
	r := &Replicated{Primary: primary}
	standby, err := newCluster()
	if err != nil {
		r.Remove()
		return nil, err
	}
	r.Standby = standby
	standby.settings = []string{"hot_standby=on"}
	// -R writes standby.signal and a primary_conninfo made of these
	// connection parameters, application_name included.
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.port, standbyName)
	if err := standby.run("pg_basebackup", "-D", standby.data(), "-d", conninfo, "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		r.Remove()
		return nil, err
	}
	if err := standby.Start(); err != nil {
		r.Remove()
		return nil, err
	}
	if err := r.awaitSync(); err != nil {
		r.Remove()
		return nil, err
	}
	return r, nil
}

// awaitSync polls the primary until it reports the standby as synchronous.
func (r *Replicated) awaitSync() error {
	db, err := sql.Open("postgres", r.Primary.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var state string
		err := db.QueryRowContext(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", standbyName).Scan(&state)
		if err == nil && state == "sync" {
			return nil
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("watch replication: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standby was not streaming synchronously within %v (sync_state %q; see %s)",
				syncTimeout, state, filepath.Join(r.Standby.dir, "log"))
		case <-tick.C:
		}
	}
}

// DSN is a key=value DSN, for lib/pq and pgx, that lists both servers and
// asks for the one that accepts writes (target_session_attrs=read-write):
// the primary, and after Promote the promoted standby.
func (r *Replicated) DSN() string {
	return fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable connect_timeout=5 target_session_attrs=read-write",
		r.Primary.port, r.Standby.port)
}

// Remove stops both servers and deletes both clusters.
func (r *Replicated) Remove() {
	if r.Standby != nil {
		r.Standby.Remove()
	}
	r.Primary.Remove()
}

// Promote turns a standby into a primary that accepts writes, and waits
// until it does.
func (c *Cluster) Promote() error {
	return c.run("pg_ctl", "-D", c.data(), "-w", "-t", "60", "promote")
}

// Port is the port the server listens on, at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// appendFile appends text to the file at path, which must exist: its owner
// and mode stay as they are.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
