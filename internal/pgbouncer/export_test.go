package pgbouncer

import "github.com/pgsessions/pgstore/internal/ownerdir"

// ReleaseOwner lets go of b's owner lock, as the death of the process that
// started b would: RemoveStale then takes b for stale.
func (b *Bouncer) ReleaseOwner() { b.owner.Close() }

// ProcessAlive is processAlive.
var ProcessAlive = ownerdir.ProcessAlive
