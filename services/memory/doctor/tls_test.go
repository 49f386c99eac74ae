package doctor

import (
	"context"
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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brainhq/brain/services/kit/pgtest"
	"github.com/brainhq/brain/services/memory/pgconn"
)

// TestTLSHandshake turns TLS on in a dedicated cluster (self-signed
// certificate, enabled by reload) and checks the tls step reports the
// handshake, unverified for sslmode=require and verified for verify-full.
func TestTLSHandshake(t *testing.T) {
	c := pgtest.NewCluster(t)
	certFile, keyFile := writeServerCert(t, c.Dir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"ALTER SYSTEM SET ssl_cert_file = '" + certFile + "'",
		"ALTER SYSTEM SET ssl_key_file = '" + keyFile + "'",
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	waitForSSL(t, ctx, c.URL("postgres"))

	otherCert, _ := writeServerCert(t, t.TempDir())
	pwFile := c.PasswordFile()
	require := pgconn.Config{Host: "127.0.0.1", Port: c.Port(), User: "brain", Database: "postgres", PasswordFile: pwFile, SSLMode: "require"}
	verifyFull := pgconn.Config{
		URL:          "postgres://brain@localhost:" + itoa(c.Port()) + "/postgres?sslmode=verify-full&sslrootcert=" + certFile,
		PasswordFile: pwFile,
	}
	verifyCA := verifyFull
	verifyCA.URL = strings.Replace(verifyFull.URL, "verify-full", "verify-ca", 1)
	wrongRoot := verifyFull
	wrongRoot.URL = strings.Replace(verifyFull.URL, certFile, otherCert, 1)
	tests := []struct {
		name    string
		cfg     pgconn.Config
		wantTLS string
	}{
		{"require", require, "certificate not verified (sslmode=require)"},
		{"verify-full", verifyFull, "certificate verified"},
		{"verify-ca", verifyCA, "certificate chain verified, host name not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, ok, _ := runDoctor(t, tt.cfg, Options{}, 5*time.Second)
			if !ok {
				t.Fatalf("steps %v did not all pass", names(steps))
			}
			tlsStep := stepNamed(t, steps, "tls")
			if !strings.HasPrefix(tlsStep.Detail, "TLS 1.3 ") || !strings.Contains(tlsStep.Detail, "CN=localhost") ||
				!strings.Contains(tlsStep.Detail, tt.wantTLS) {
				t.Fatalf("tls detail %q; want TLS 1.3, CN=localhost, %q", tlsStep.Detail, tt.wantTLS)
			}
			if d := stepNamed(t, steps, "auth").Detail; !strings.Contains(d, " over TLS ") {
				t.Fatalf("auth detail %q; want the session over TLS", d)
			}
		})
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		steps, ok, _ := runDoctor(t, wrongRoot, Options{}, 5*time.Second)
		last := steps[len(steps)-1]
		if ok || last.Name != "tls" || !strings.Contains(last.Detail, "TLS handshake: ") || !strings.Contains(last.Hint, "sslrootcert") {
			t.Fatalf("ok=%v last=%+v; want the tls step to fail verification", ok, last)
		}
	})
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func waitForSSL(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	for {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var ssl string
		err = conn.QueryRow(ctx, "SHOW ssl").Scan(&ssl)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ssl == "on" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("ssl did not turn on after reload")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writeServerCert writes a self-signed certificate for localhost/127.0.0.1
// into dir, owned like dir (the server user) with the key at mode 0600, as
// PostgreSQL insists.
func writeServerCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	for path, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, int(sys.Uid), int(sys.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
