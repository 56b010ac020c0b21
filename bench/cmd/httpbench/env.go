package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// environment is what the report records about the machine and versions.
type environment struct {
	cpuModel   string
	nproc      string
	numCPU     int
	memory     string
	kernel     string
	goVersion  string
	toolchain  string
	node       string
	pooler     string
	postgres   string
	pgSettings string
	library    string
	goModules  []string
	npm        []string
}

func collectEnv(ctx context.Context, db *sql.DB, benchDir string, withNode, withPooler bool) environment {
	e := environment{
		cpuModel:  firstField("/proc/cpuinfo", "model name"),
		nproc:     command("", "nproc"),
		numCPU:    runtime.NumCPU(),
		memory:    firstField("/proc/meminfo", "MemTotal"),
		goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		toolchain: command("", "go", "version"),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}
	if withNode {
		e.node = command("", "node", "--version")
	}
	if withPooler {
		e.pooler = pgbouncerVersion()
	}
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&e.postgres); err != nil {
		e.postgres = "unknown: " + err.Error()
	}
	var settings []string
	for _, name := range []string{"fsync", "synchronous_commit", "shared_buffers", "max_connections"} {
		var v string
		if err := db.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			settings = append(settings, name+"="+v)
		}
	}
	e.pgSettings = strings.Join(settings, ", ")

	// The library is the working tree one directory up; read-only git.
	libDir := filepath.Join(benchDir, "..")
	e.library = command(libDir, "git", "rev-parse", "--short=12", "HEAD")
	if changed := command(libDir, "git", "--no-optional-locks", "diff", "--name-only", "HEAD",
		"--", ".", ":(exclude)bench"); changed != "" && !strings.HasPrefix(changed, "unknown") {
		e.library += " plus uncommitted changes to " + strings.Join(strings.Fields(changed), ", ")
	}

	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			v := m.Version
			if m.Replace != nil {
				v += " => " + m.Replace.Path
				if m.Replace.Version != "" {
					v += " " + m.Replace.Version
				}
			}
			e.goModules = append(e.goModules, m.Path+" "+v)
		}
	}
	if withNode {
		for _, pkg := range []string{"express", "express-session", "connect-pg-simple", "pg"} {
			e.npm = append(e.npm, pkg+" "+npmVersion(filepath.Join(benchDir, "express", "node_modules", pkg)))
		}
	}
	return e
}

// pgbouncerVersion is the first line of pgbouncer --version, from the
// binary internal/pgbouncer runs.
func pgbouncerVersion() string {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		bin = "/usr/sbin/pgbouncer" // Debian's, which a PATH may lack
	}
	v, _, _ := strings.Cut(command("", bin, "--version"), "\n")
	return v
}

// command runs name with args in dir and returns its trimmed output, or
// "unknown (...)" when it fails.
func command(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "unknown (" + name + ": " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// firstField returns the value of the first "key: value" line for key.
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func npmVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "not installed"
	}
	var p struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &p) != nil || p.Version == "" {
		return "unknown"
	}
	return p.Version
}

func (e environment) write(w *strings.Builder) {
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| CPU | %s, nproc %s (runtime.NumCPU %d) |\n", e.cpuModel, e.nproc, e.numCPU)
	fmt.Fprintf(w, "| memory | %s |\n", e.memory)
	fmt.Fprintf(w, "| kernel | Linux %s |\n", e.kernel)
	fmt.Fprintf(w, "| Go (this binary) | %s; toolchain: %s |\n", e.goVersion, e.toolchain)
	if e.node != "" {
		fmt.Fprintf(w, "| Node | %s, NODE_ENV=production |\n", e.node)
	}
	fmt.Fprintf(w, "| PostgreSQL | %s |\n", e.postgres)
	if e.pooler != "" {
		fmt.Fprintf(w, "| pooler | %s: pool_mode=transaction, server_round_robin=1, auth trust, on 127.0.0.1 |\n", e.pooler)
	}
	fmt.Fprintf(w, "| PostgreSQL settings | %s |\n", e.pgSettings)
	fmt.Fprintf(w, "| pgstore library | %s |\n", e.library)
	fmt.Fprintf(w, "| Go modules | %s |\n", strings.Join(e.goModules, "<br>"))
	if len(e.npm) > 0 {
		fmt.Fprintf(w, "| npm packages | %s |\n", strings.Join(e.npm, ", "))
	}
}
