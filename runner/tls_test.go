package runner_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenq/warren/internal/testenv"
	"github.com/warrenq/warren/routing"
	"github.com/warrenq/warren/runner"
)

// writeSelfSigned writes a self-signed certificate and its key as PEM
// files in dir (amqps:// end to end is tested in internal/faulttest).
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestLoadTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	if cfg, err := runner.LoadTLS("", "", ""); cfg != nil || err != nil {
		t.Errorf("nothing set: got %v, %v; want nil, nil (amqp091-go's defaults)", cfg, err)
	}
	cfg, err := runner.LoadTLS(cert, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Errorf("CA and client certificate not loaded: %+v", cfg)
	}
	if cfg, err := runner.LoadTLS("", cert, key); err != nil || cfg.RootCAs != nil {
		t.Errorf("client certificate alone: %v, RootCAs %v; want the system roots (nil)", err, cfg.RootCAs)
	}

	bad := []struct {
		name          string
		ca, cert, key string
		want          string
	}{
		{"certificate without key", "", cert, "", "give both or neither"},
		{"key without certificate", "", "", key, "give both or neither"},
		{"missing CA file", filepath.Join(dir, "nope.pem"), "", "", "no such file"},
		{"CA file without PEM", notPEM, "", "", "no PEM certificate"},
		{"key does not match", "", cert, notPEM, "client certificate"},
	}
	for _, c := range bad {
		if _, err := runner.LoadTLS(c.ca, c.cert, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
}

// TLS files with a plain amqp:// URL are a mistake that would send the
// password in the clear: the runner refuses to start.
func TestRunRefusesTLSSettingsWithPlainAMQP(t *testing.T) {
	cert, _ := writeSelfSigned(t, t.TempDir())
	t.Setenv(runner.EnvTLSCA, cert)
	reg := noopRegistry()
	var logs testenv.Buffer
	code := runner.Run(context.Background(), []string{"-queues", "q", "-metrics-addr", "", "-broker", "amqp://u:Hush-123@127.0.0.1:1/"}, &logs, reg, routing.Topology{})
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	out := logs.String()
	if !strings.Contains(out, "use amqps://") || !strings.Contains(out, runner.EnvTLSCA) {
		t.Errorf("log should name %s and say to use amqps://:\n%s", runner.EnvTLSCA, out)
	}
	if strings.Contains(out, "Hush-123") {
		t.Errorf("log shows the password:\n%s", out)
	}
}
