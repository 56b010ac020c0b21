package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEQuickStartIsThisProgram keeps the README's quick start from
// drifting: it must be main.go, character for character, and main.go is
// compiled and vetted with the rest of the module.
func TestREADMEQuickStartIsThisProgram(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	block, ok := goBlockAfter(string(readme), "## Quick start")
	if !ok {
		t.Fatal("README.md has no ```go block under \"## Quick start\"")
	}
	if block != string(program) {
		t.Errorf("the README's quick start differs from example/quickstart/main.go; copy main.go into the README.\nREADME:\n%s\nmain.go:\n%s",
			block, program)
	}
}

// goBlockAfter returns the body of the first ```go code block after the
// line heading.
func goBlockAfter(doc, heading string) (string, bool) {
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, "\n```go\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	return block + "\n", ok
}
