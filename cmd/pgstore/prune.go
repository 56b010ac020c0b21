package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pgsessions/pgstore"
)

var pruneCommand = &command{
	name:    "prune",
	args:    "[flags]",
	summary: "delete the expired sessions now",
	doc: `Deletes the rows that have expired, by the database's clock, as the
store's background pruner does (Store.Prune), and prints how many. Run it
from cron when the application sets Config.PruneInterval negative.
`,
	flags: func(_ *flag.FlagSet, o *common) func(context.Context, io.Writer) error {
		return func(ctx context.Context, stdout io.Writer) error {
			st, err := o.open(ctx, false, pgstore.Config{})
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := st.Prune(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted %d expired sessions\n", n)
			return nil
		}
	},
}
