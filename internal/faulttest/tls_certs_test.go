//go:build fault

package faulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

// testPKI is a throwaway certificate authority and the files a TLS test
// needs, written under one directory: the CA, a server certificate for
// 127.0.0.1 and localhost, and a client certificate.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// ClientSubject is the client certificate's subject as RabbitMQ prints
	// it (list_connections peer_cert_subject).
	ClientSubject string
}

// newTestPKI makes a fresh CA and certificates in dir. ECDSA P-256 keeps
// generation fast; the server key is in the SEC 1 "EC PRIVATE KEY" form,
// which every Erlang/OTP release RabbitMQ supports reads.
func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	p := testPKI{
		CA:            filepath.Join(dir, "ca.pem"),
		ServerCert:    filepath.Join(dir, "server.pem"),
		ServerKey:     filepath.Join(dir, "server.key"),
		ClientCert:    filepath.Join(dir, "client.pem"),
		ClientKey:     filepath.Join(dir, "client.key"),
		ClientSubject: "CN=warren-test-client",
	}
	now := time.Now()
	caKey := tlsNewKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          tlsSerial(t),
		Subject:               pkix.Name{CommonName: "warren test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	tlsWritePEM(t, p.CA, "CERTIFICATE", caDER)

	leaf := func(cn string, usage x509.ExtKeyUsage, certFile, keyFile string, server bool) {
		key := tlsNewKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: tlsSerial(t),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		tlsWritePEM(t, certFile, "CERTIFICATE", der)
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		tlsWritePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	}
	leaf("localhost", x509.ExtKeyUsageServerAuth, p.ServerCert, p.ServerKey, true)
	leaf("warren-test-client", x509.ExtKeyUsageClientAuth, p.ClientCert, p.ClientKey, false)
	return p
}

func tlsNewKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tlsSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func tlsWritePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
