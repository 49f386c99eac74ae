// Package cli holds the subcommands both binaries share: `health`, a gRPC
// health client for container health checks without curl or grpcurl, and
// `version`.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health runs `<binary> health [--addr A] [--service NAME] [--timeout D]
// [--tls-ca-file F]`: it prints the status and returns 0 when SERVING, 1 when
// not, 2 on bad usage.
func Health(args []string, defaultAddr string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr, "gRPC address of the server")
	service := fs.String("service", "", `health service name ("" is the server as a whole)`)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	caFile := fs.String("tls-ca-file", "", "CA certificate (PEM) to verify a TLS server; plaintext when empty")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	creds := insecure.NewCredentials()
	if *caFile != "" {
		c, err := ClientTLS(*caFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		creds = c
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		fmt.Fprintf(stderr, "health: %v\n", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		fmt.Fprintf(stderr, "health %s %q: %v\n", *addr, *service, err)
		return 1
	}
	fmt.Fprintln(stdout, resp.GetStatus())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}

// ClientTLS returns client credentials that trust the CA in caFile.
func ClientTLS(caFile string) (credentials.TransportCredentials, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// buildVersion is set at link time (make build: -X ...cli.buildVersion=$(git describe)).
var buildVersion string

// Version returns "<name> <version> (revision <vcs revision>) <go version>".
func Version(name string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " " + buildVersion + " (no build info)"
	}
	if buildVersion != "" {
		return fmt.Sprintf("%s %s %s", name, buildVersion, info.GoVersion)
	}
	rev := "unknown"
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			rev = s.Value
		}
	}
	return fmt.Sprintf("%s %s (revision %s) %s", name, info.Main.Version, rev, info.GoVersion)
}

// LocalAddr turns a listen address (":9091", "0.0.0.0:9091") into one to
// dial on this host, so `<binary> health` finds its own server in a
// container where only GRPC_ADDR is set. An empty listen address gives def.
func LocalAddr(listen, def string) string {
	if listen == "" {
		listen = def
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
