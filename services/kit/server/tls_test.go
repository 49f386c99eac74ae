package server

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
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/brainhq/brain/services/kit/cli"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "brain-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
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
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLS: the gRPC port serves TLS verified against the CA, refuses
// plaintext, and the in-process gateway still reaches the server (it pins
// the server's own certificate).
func TestTLS(t *testing.T) {
	certFile, keyFile := writeCert(t)
	r := start(t, Config{Name: "test", TLSCertFile: certFile, TLSKeyFile: keyFile}, func(s *Server) {
		s.RegisterGateway(func(ctx context.Context, mux *runtime.ServeMux, self *grpc.ClientConn) error {
			// A gateway route that calls the server over the pinned TLS pipe.
			return mux.HandlePath("GET", "/v1/selfcheck", func(w http.ResponseWriter, req *http.Request, _ map[string]string) {
				resp, err := healthpb.NewHealthClient(self).Check(req.Context(), &healthpb.HealthCheckRequest{})
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				_, _ = w.Write([]byte(resp.GetStatus().String()))
			})
		})
	})
	creds, err := cli.ClientTLS(certFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(r.srv.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if st, err := check(context.Background(), conn, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("TLS health = %v, %v", st, err)
	}
	plain := dial(t, r.srv.GRPCAddr())
	if _, err := check(context.Background(), plain, ""); err == nil {
		t.Fatal("plaintext client got an answer from a TLS server")
	}
	if code, body := httpGet(t, "http://"+r.srv.HTTPAddr()+"/v1/selfcheck"); code != 200 || body != "SERVING" {
		t.Fatalf("gateway over TLS self-connection = %d %q", code, body)
	}
}

func TestTLSNeedsBothFiles(t *testing.T) {
	certFile, _ := writeCert(t)
	if _, err := New(Config{Name: "t", TLSCertFile: certFile}, nopLogger()); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
}

func nopLogger() *zap.Logger { return zap.NewNop() }
