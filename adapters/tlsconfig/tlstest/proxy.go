package tlstest

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy terminates TLS (srv, e.g. p.ServerConfig) on a loopback port and
// forwards the bytes of each connection to upstream (host:port, plain TCP):
// a TLS front for a broker that has none, so that the protocol behind it,
// logins and refusals included, is the real broker's own. It returns the
// proxy's host:port and stops at t.Cleanup.
func Proxy(t testing.TB, srv *tls.Config, upstream string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatalf("tlstest: proxy: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); _ = c.(*tls.Conn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
