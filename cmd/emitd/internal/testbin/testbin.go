// Package testbin builds the emitd binary for tests that run it as a
// process, and finds free loopback ports for the servers they start.
package testbin

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Main builds the emitd binary from pkgDir (the cmd/emitd directory,
// relative to the test), stores its path in *bin, runs the tests and exits;
// call it from TestMain.
func Main(m *testing.M, pkgDir string, bin *string) {
	dir, err := os.MkdirTemp("", "emitd-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, "emitd")
	build := exec.Command("go", "build", "-o", *bin, pkgDir)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build emitd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// FreePort returns a loopback port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
