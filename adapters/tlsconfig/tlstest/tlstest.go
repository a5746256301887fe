// Package tlstest writes a throw-away PKI for tests: a CA, a server
// certificate for 127.0.0.1, ::1 and localhost, and a client certificate,
// all made with crypto/x509 (no openssl) into t.TempDir().
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is one CA and the certificates it signed, as PEM files.
type PKI struct {
	Dir string
	// CAFile is the CA certificate (what a client's tls.caFile names).
	CAFile string
	// ServerCertFile and ServerKeyFile: the server's certificate, valid
	// for 127.0.0.1, ::1 and localhost (or Options.ServerNames).
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile: a client certificate for mutual
	// TLS, common name "emitd".
	ClientCertFile, ClientKeyFile string

	caPool *x509.CertPool
	server tls.Certificate
}

// Options change what New makes.
type Options struct {
	// ServerNames replace the server certificate's names (DNS names or
	// IP addresses).
	ServerNames []string
	// Expired makes a server certificate that expired an hour ago.
	Expired bool
}

// New makes a PKI with the default options.
func New(t testing.TB) *PKI { return NewWith(t, Options{}) }

// NewWith makes a PKI in t.TempDir().
func NewWith(t testing.TB, o Options) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{Dir: dir}
	now := time.Now()

	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "emitd test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("tlstest: CA: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.CAFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)

	names := o.ServerNames
	if len(names) == 0 {
		names = []string{"127.0.0.1", "::1", "localhost"}
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.Expired {
		srvTmpl.NotBefore, srvTmpl.NotAfter = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, n)
		}
	}
	p.ServerCertFile, p.ServerKeyFile = issue(t, dir, "server", srvTmpl, caCert, caKey)

	cliTmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "emitd"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	p.ClientCertFile, p.ClientKeyFile = issue(t, dir, "client", cliTmpl, caCert, caKey)

	p.server, err = tls.LoadX509KeyPair(p.ServerCertFile, p.ServerKeyFile)
	if err != nil {
		t.Fatalf("tlstest: load server pair: %v", err)
	}
	return p
}

// ServerConfig is a server's TLS configuration with the server
// certificate; with requireClientCert, clients must present a certificate
// signed by this CA.
func (p *PKI) ServerConfig(requireClientCert bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if requireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.caPool
	}
	return c
}

// ClientConfig is a client's TLS configuration trusting this CA.
func (p *PKI) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.caPool, MinVersion: tls.VersionTLS12}
}

func issue(t testing.TB, dir, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("tlstest: %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: %s key: %v", name, err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("tlstest: serial: %v", err)
	}
	return n
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("tlstest: write %s: %v", path, err)
	}
	return path
}
