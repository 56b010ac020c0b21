package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// target is a goal the team set for pgstore on the 2-core machine: pgstore's
// req/s divided by the other server's must reach min.
type target struct {
	other    string
	workload string
	min      float64
}

var targets = []target{
	{"floor", "read", 0.80}, {"floor", "write", 0.85},
	{"express", "read", 5}, {"express", "write", 2},
	{"scs", "read", 1}, {"scs", "write", 1},
}

func buildReport(o options, env environment, started time.Time, results []result) string {
	var w strings.Builder
	fmt.Fprintf(&w, "# pgstore HTTP benchmark, %s\n\n", started.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&w, "Command: `go run ./cmd/httpbench %s` (in bench/)\n\n", strings.Join(os.Args[1:], " "))

	fmt.Fprintf(&w, "## Machine and versions\n\n")
	env.write(&w)

	fmt.Fprintf(&w, "\n## Setup\n\n")
	fmt.Fprintf(&w, "- Servers, one after another on the same PostgreSQL, each on a fresh table in its own schema: %s.\n", strings.Join(o.servers, ", "))
	fmt.Fprintf(&w, "- %d sessions per server, created through the server's own `POST /login?user=uNNN`; every request carries the cookie of one picked at random.\n", o.sessions)
	fmt.Fprintf(&w, "- `GET /read` loads the session and answers its user name; `POST /write` increments a counter in the session and answers it. Every response is checked (2xx and the expected body).\n")
	fmt.Fprintf(&w, "- Load: %d keep-alive connections (net/http Transport, requests built before the clock starts), warm-up %s (Express %s) then %s measured, per workload.\n",
		o.conns, o.warmup, o.nodeWarmup, o.duration)
	fmt.Fprintf(&w, "- Pools: every server gets at most %d connections (pg's default of 10 unless -pool says otherwise): Go servers through database/sql with lib/pq (MaxOpenConns = MaxIdleConns), Express through pg's Pool (max). The exception is pgstore-open, which keeps the pool `pgstore.Open` makes, as a newcomer would; its DB round trips are not counted (n/a), and when its pool closes connections the CPU of their backends, gone before the end of the run, is not counted either.\n", o.pool)
	fmt.Fprintf(&w, "- pgstore: `pgstore.New(db, Config{KeyPairs, SchemaName})` on the tuned pool, defaults otherwise; pgstore-open: `pgstore.Open(dsn, Config{KeyPairs, SchemaName})`, the same handlers; handlers call `session.Save` on every request. Express: resave false, saveUninitialized false, pruner off, touch on (default). scs: `scs.New()` + `postgresstore.New(db)` + `LoadAndSave`, as its README shows.\n")
	fmt.Fprintf(&w, "- The load generator, the server and PostgreSQL share the same %d cores, so every req/s here is bounded by all three together. The CPU columns split the measured window's CPU time per request: load generator (this process), server process, the server's PostgreSQL backends, and everything else the machine did meanwhile (PostgreSQL's WAL writer and other background processes, kernel threads doing I/O and networking, and other users' work: the machine is shared, so a large \"other\" marks a noisy window). \"machine busy\" is the share of all cores that was not idle; \"iowait\" the share that was idle while I/O was outstanding (writes wait for WAL flushes; other users' I/O slows them without showing in \"other\").\n", env.numCPU)
	if slices.ContainsFunc(o.servers, func(s string) bool { return serverSpecs[s].pooler }) {
		fmt.Fprintf(&w, "- pgstore-pooler and floor-pooler reach PostgreSQL through a PgBouncer in transaction mode on this machine, one started for each server's run, with %d server connections (the direct servers' pool size), all opened before the run and handed out round robin; the server's own pool is the same %d connections, to PgBouncer. The driver is lib/pq with `binary_parameters=yes`, so that a query with parameters is one round trip. pgstore-pooler: `pgstore.New` with `Config.TransactionPooler` (nothing prepared). floor-pooler: the floor's statements, unprepared (one-shot queries, unnamed). PgBouncer's CPU is its own column, counted in the run's own total; DB round trips are the server's, to PgBouncer.\n", o.pool, o.pool)
	}
	if o.profile {
		fmt.Fprintf(&w, "- CPU profiling was ON for the Go servers during the measured runs (about 1%% overhead).\n")
	}

	fmt.Fprintf(&w, "\n## Results\n\n")
	writeTable(&w, results, o.rounds > 1)
	var errs []string
	for _, r := range results {
		for _, m := range r.errorLog {
			errs = append(errs, fmt.Sprintf("- round %d, %s %s: %s", r.round, r.server, r.workload, m))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&w, "\n**FAILED: some responses were not 2xx with the expected body.** First failures:\n\n%s\n", strings.Join(errs, "\n"))
	}
	summary, best := results, results
	if o.rounds > 1 {
		summary, best = medians(results), bests(results)
		fmt.Fprintf(&w, "\n## Medians over %d rounds\n\nEach cell is the median of the rounds' values; requests and errors are totals.\n\n", o.rounds)
		writeTable(&w, summary, false)
		fmt.Fprintf(&w, "\n## Best of %d rounds\n\nFor each server and workload, the round with the most req/s: on a shared machine, the least disturbed one (compare its \"other\" column).\n\n", o.rounds)
		writeTable(&w, best, true)
	}

	fmt.Fprintf(&w, "\n## Ratios (pgstore req/s ÷ the other's)\n\n")
	if o.rounds > 1 {
		fmt.Fprintf(&w, "\"median\" divides the medians; \"range\" is the lowest and highest ratio within one round; \"best\" divides the best rounds; \"clean\" is the median of the ratios of the rounds where neither run was disturbed, with how many there were. The verdict is on \"clean\" when there is a clean round, else on the median. ")
	}
	fmt.Fprintf(&w, "\"CPU ratio\" divides the other server's own CPU per request by pgstore's (medians with rounds): the req/s ratio an undisturbed, CPU-bound machine would show. It resists noise from other users better than req/s, but it assumes the run is CPU-bound, which writes (waiting for WAL flushes) are only in part.\n\n")
	if o.rounds > 1 {
		fmt.Fprintf(&w, "| pgstore vs | workload | target | median | range | best | clean | CPU ratio | verdict |\n|---|---|--:|--:|--:|--:|--:|--:|---|\n")
	} else {
		fmt.Fprintf(&w, "| pgstore vs | workload | target | ratio | CPU ratio | verdict |\n|---|---|--:|--:|--:|---|\n")
	}
	for _, t := range targets {
		row := []string{serverSpecs[t.other].title, t.workload, fmt.Sprintf("≥ %.2fx", t.min)}
		ratio := ratioOf(summary, t.other, t.workload)
		disturbed := isDisturbed(summary, "pgstore", t.workload) || isDisturbed(summary, t.other, t.workload)
		row = append(row, fmtRatio(ratio))
		if o.rounds > 1 {
			var all, clean []float64
			for round := 1; round <= o.rounds; round++ {
				var inRound []result
				for _, r := range results {
					if r.round == round {
						inRound = append(inRound, r)
					}
				}
				q := ratioOf(inRound, t.other, t.workload)
				if q <= 0 {
					continue
				}
				all = append(all, q)
				if !isDisturbed(inRound, "pgstore", t.workload) && !isDisturbed(inRound, t.other, t.workload) {
					clean = append(clean, q)
				}
			}
			rangeCell, cleanCell := "n/a", "none"
			if len(all) > 0 {
				rangeCell = fmt.Sprintf("%.2f–%.2f", slices.Min(all), slices.Max(all))
			}
			if len(clean) > 0 {
				cleanCell = fmt.Sprintf("%.2fx (%d of %d)", median(clean), len(clean), o.rounds)
				ratio, disturbed = median(clean), false
			}
			row = append(row, rangeCell, fmtRatio(ratioOf(best, t.other, t.workload)), cleanCell)
		}
		row = append(row, fmtRatio(cpuRatio(summary, t.other, t.workload)))
		verdict := "met"
		switch {
		case ratio <= 0:
			verdict = "n/a"
		case ratio < t.min:
			verdict = "MISSED"
		}
		if ratio > 0 && disturbed {
			verdict += " (disturbed run)"
		}
		row = append(row, verdict)
		fmt.Fprintf(&w, "| %s |\n", strings.Join(row, " | "))
	}

	if hasServer(summary, "pgstore-pooler") || hasServer(summary, "floor-pooler") {
		writePoolerRatios(&w, o, results, summary)
	}

	if hasServer(summary, "pgstore-open") && hasServer(summary, "pgstore") {
		fmt.Fprintf(&w, "\n## pgstore.Open's own pool vs the tuned one\n\n")
		medians := ""
		if o.rounds > 1 {
			medians = ", medians over the rounds"
		}
		fmt.Fprintf(&w, "req/s of pgstore on the pool `pgstore.Open` makes, left as it is, divided by pgstore's on the tuned pool (%d connections kept open and idle)%s. Below 1, Open's defaults cost throughput.\n\n",
			o.pool, medians)
		fmt.Fprintf(&w, "| workload | Open req/s | tuned req/s | Open ÷ tuned |\n|---|--:|--:|--:|\n")
		for _, wl := range workloads {
			open, tuned := findRPS(summary, "pgstore-open", wl.name), findRPS(summary, "pgstore", wl.name)
			ratio := 0.0
			if open > 0 && tuned > 0 {
				ratio = open / tuned
			}
			fmt.Fprintf(&w, "| %s | %.0f | %.0f | %s |\n", wl.name, open, tuned, fmtRatio(ratio))
		}
	}

	var profiled []result
	for _, r := range results {
		if r.profile != "" {
			profiled = append(profiled, r)
		}
	}
	if len(profiled) > 0 {
		fmt.Fprintf(&w, "\n## CPU profiles of the Go servers\n\nFiles are beside this report; open one with `go tool pprof -http=: FILE`.\n")
		for _, r := range profiled {
			fmt.Fprintf(&w, "\n### %s %s (%s)\n\n", r.server, r.workload, filepath.Base(r.profile))
			fmt.Fprintf(&w, "Top by flat time:\n\n```\n%s\n```\n\n", pprofTop(r.profile, false, 20))
			fmt.Fprintf(&w, "Top by cumulative time:\n\n```\n%s\n```\n", pprofTop(r.profile, true, 35))
		}
	}
	return w.String()
}

// pprofTop runs go tool pprof -top on a profile.
func pprofTop(path string, cum bool, n int) string {
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n)}
	if cum {
		args = append(args, "-cum")
	}
	out, err := exec.Command("go", append(args, path)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof failed: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func writeTable(w *strings.Builder, results []result, withRound bool) {
	round, roundSep := "", ""
	if withRound {
		round, roundSep = "round | ", "--:|"
	}
	// The PgBouncer column, only when a server went through one.
	withPooler := slices.ContainsFunc(results, func(r result) bool { return serverSpecs[r.server].pooler })
	pooler, poolerSep := "", ""
	if withPooler {
		pooler, poolerSep = "PgBouncer | ", "--:|"
	}
	fmt.Fprintf(w, "| %sserver | workload | req/s | p50 ms | p99 ms | requests | errors | DB round trips/req | CPU µs/req: load gen | server | %sPG backends | own total | other | machine busy | iowait |\n", round, pooler)
	fmt.Fprintf(w, "|%s---|---|--:|--:|--:|--:|--:|--:|--:|--:|%s--:|--:|--:|--:|--:|\n", roundSep, poolerSep)
	flagged := false
	for _, r := range results {
		trips := "n/a"
		if r.tripsPerReq >= 0 {
			trips = fmt.Sprintf("%.2f", r.tripsPerReq)
		}
		if withRound {
			fmt.Fprintf(w, "| %d ", r.round)
		}
		other := fmt.Sprintf("%.0f", us(r.cpu.other))
		if r.disturbed() {
			other += " (!)"
			flagged = true
		}
		poolerCell := ""
		if withPooler {
			poolerCell = fmt.Sprintf("%.0f | ", us(r.cpu.pooler))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %d | %d | %s | %.0f | %.0f | %s%.0f | %.0f | %s | %.0f%% | %.0f%% |\n",
			serverSpecs[r.server].title, r.workload, r.rps, ms(r.p50), ms(r.p99), r.requests, r.errors, trips,
			us(r.cpu.loadgen), us(r.cpu.server), poolerCell, us(r.cpu.backends), us(r.cpu.own()), other, r.cpu.machineBusy, r.cpu.machineIOWait)
	}
	if flagged {
		fmt.Fprintf(w, "\n(!) disturbed: \"other\" CPU exceeded a quarter of the run's own (load generator + server + PgBouncer if any + its backends), so other work on the machine took a share of the cores; that row's req/s is too low. Re-run, or use -rounds and read the best rounds.\n")
	}
}

// disturbed reports whether other work on the machine took a large share
// of the cores during the run: "other" CPU above a quarter of the run's
// own. Undisturbed runs here show "other" below a tenth.
func (r result) disturbed() bool {
	return r.cpu.other*4 > r.cpu.own()
}

// medians folds the rounds of each (server, workload) into one row.
func medians(results []result) []result {
	var keys [][2]string
	groups := map[[2]string][]result{}
	for _, r := range results {
		k := [2]string{r.server, r.workload}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []result
	for _, k := range keys {
		g := groups[k]
		m := result{server: k[0], workload: k[1]}
		med := func(f func(result) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return median(v)
		}
		for _, r := range g {
			m.requests += r.requests
			m.errors += r.errors
		}
		m.rps = med(func(r result) float64 { return r.rps })
		m.p50 = time.Duration(med(func(r result) float64 { return float64(r.p50) }))
		m.p99 = time.Duration(med(func(r result) float64 { return float64(r.p99) }))
		m.tripsPerReq = med(func(r result) float64 { return r.tripsPerReq })
		m.cpu.loadgen = time.Duration(med(func(r result) float64 { return float64(r.cpu.loadgen) }))
		m.cpu.server = time.Duration(med(func(r result) float64 { return float64(r.cpu.server) }))
		m.cpu.pooler = time.Duration(med(func(r result) float64 { return float64(r.cpu.pooler) }))
		m.cpu.backends = time.Duration(med(func(r result) float64 { return float64(r.cpu.backends) }))
		m.cpu.other = time.Duration(med(func(r result) float64 { return float64(r.cpu.other) }))
		m.cpu.machineBusy = med(func(r result) float64 { return r.cpu.machineBusy })
		m.cpu.machineIOWait = med(func(r result) float64 { return r.cpu.machineIOWait })
		out = append(out, m)
	}
	return out
}

// bests keeps, for each (server, workload), the round with the most req/s.
func bests(results []result) []result {
	var out []result
	for _, r := range results {
		found := false
		for i := range out {
			if out[i].server == r.server && out[i].workload == r.workload {
				found = true
				if r.rps > out[i].rps {
					out[i] = r
				}
			}
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}

// ratioOf is pgstore's req/s over other's for workload, or 0 when either is
// missing.
func ratioOf(results []result, other, workload string) float64 {
	return rpsRatio(results, "pgstore", other, workload)
}

// rpsRatio is a's req/s over b's for workload, or 0 when either is missing.
func rpsRatio(results []result, a, b, workload string) float64 {
	num, den := findRPS(results, a, workload), findRPS(results, b, workload)
	if num <= 0 || den <= 0 {
		return 0
	}
	return num / den
}

// writePoolerRatios writes the section on the servers through PgBouncer:
// pgstore ÷ floor directly and through the pooler, and what the pooler
// costs each (its req/s through the pooler ÷ directly).
func writePoolerRatios(w *strings.Builder, o options, results, summary []result) {
	fmt.Fprintf(w, "\n## Through PgBouncer\n\n")
	fmt.Fprintf(w, "req/s ratios. \"pgstore ÷ floor\" directly and through PgBouncer, each pair from the same run; \"pooler ÷ direct\" is what going through PgBouncer (and, for pgstore, TransactionPooler's unprepared statements; for the floor, one-shot queries) leaves of each one's direct req/s. ")
	if o.rounds > 1 {
		fmt.Fprintf(w, "Each cell divides the medians over the rounds, with the lowest and highest ratio within one round in brackets. ")
	}
	fmt.Fprintf(w, "\"CPU\" divides own CPU per request the same way round (the denominator's over the numerator's), the req/s ratio an undisturbed, CPU-bound machine would show.\n\n")
	type pair struct{ title, a, b string }
	pairs := []pair{
		{"pgstore ÷ floor, direct", "pgstore", "floor"},
		{"pgstore ÷ floor, via PgBouncer", "pgstore-pooler", "floor-pooler"},
		{"pgstore via PgBouncer ÷ direct", "pgstore-pooler", "pgstore"},
		{"floor via PgBouncer ÷ direct", "floor-pooler", "floor"},
	}
	fmt.Fprintf(w, "| ratio | workload | req/s | CPU |\n|---|---|--:|--:|\n")
	for _, p := range pairs {
		for _, wl := range workloads {
			q := rpsRatio(summary, p.a, p.b, wl.name)
			if q <= 0 {
				continue
			}
			cell := fmtRatio(q)
			if o.rounds > 1 {
				var all []float64
				for round := 1; round <= o.rounds; round++ {
					var inRound []result
					for _, r := range results {
						if r.round == round {
							inRound = append(inRound, r)
						}
					}
					if q := rpsRatio(inRound, p.a, p.b, wl.name); q > 0 {
						all = append(all, q)
					}
				}
				if len(all) > 0 {
					cell += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(all), slices.Max(all))
				}
			}
			cpu := 0.0
			if a, b := findCPU(summary, p.a, wl.name), findCPU(summary, p.b, wl.name); a > 0 && b > 0 {
				cpu = float64(b) / float64(a)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", p.title, wl.name, cell, fmtRatio(cpu))
		}
	}
}

// findCPU is a server's own CPU per request for workload, or 0.
func findCPU(results []result, server, workload string) time.Duration {
	for _, r := range results {
		if r.server == server && r.workload == workload {
			return r.cpu.own()
		}
	}
	return 0
}

// cpuRatio is the other server's own CPU per request over pgstore's.
func cpuRatio(results []result, other, workload string) float64 {
	var num, den time.Duration
	for _, r := range results {
		if r.workload != workload {
			continue
		}
		switch r.server {
		case other:
			num = r.cpu.own()
		case "pgstore":
			den = r.cpu.own()
		}
	}
	if num <= 0 || den <= 0 {
		return 0
	}
	return float64(num) / float64(den)
}

func fmtRatio(q float64) string {
	if q <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", q)
}

func isDisturbed(results []result, server, workload string) bool {
	for _, r := range results {
		if r.server == server && r.workload == workload {
			return r.disturbed()
		}
	}
	return false
}

func hasServer(results []result, server string) bool {
	for _, r := range results {
		if r.server == server {
			return true
		}
	}
	return false
}

func findRPS(results []result, server, workload string) float64 {
	for _, r := range results {
		if r.server == server && r.workload == workload {
			return r.rps
		}
	}
	return 0
}

// median returns the median of v, which it sorts.
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
