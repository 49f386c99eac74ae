// Package doctor runs the PostgreSQL connectivity ladder behind
// `memory doctor`: config, DNS, TCP, TLS, authentication, SELECT 1, server
// identity, schema version and row counts, one line per step with a fix hint,
// each step bounded by a timeout so the whole run cannot hang.
package doctor

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	pgxconn "github.com/jackc/pgx/v5/pgconn"

	"github.com/brainhq/brain/services/memory/pgconn"
	"github.com/brainhq/brain/services/memory/store"
)

// Step is the outcome of one rung of the ladder.
type Step struct {
	Name    string
	OK      bool
	Detail  string
	Hint    string // what to do about it; may accompany an OK step too
	Elapsed time.Duration
}

// Options tunes Run.
type Options struct {
	// StepTimeout bounds every step; default 3s.
	StepTimeout time.Duration
	// ExpectedSchemaVersion is the migration version the binary needs;
	// 0 reports the version found without judging it.
	ExpectedSchemaVersion int64
	// SchemaVersion reads the database's schema version; nil reads the
	// version table the migrations keep (store.ReadSchemaVersion; 0 when the
	// schema is absent).
	SchemaVersion func(ctx context.Context, conn *pgx.Conn) (int64, error)
	// LookupIPAddr resolves the host for the dns step and for the
	// connection the auth step makes; nil is net.DefaultResolver.
	LookupIPAddr func(ctx context.Context, host string) ([]net.IPAddr, error)
}

// DefaultStepTimeout is used when Options.StepTimeout is zero.
const DefaultStepTimeout = 3 * time.Second

// Step names, in ladder order.
const (
	StepConfig  = "config"
	StepDNS     = "dns"
	StepTCP     = "tcp"
	StepTLS     = "tls"
	StepAuth    = "auth"
	StepSelect1 = "select1"
	StepServer  = "server"
	StepSchema  = "schema"
	StepRows    = "rows"
)

// Run climbs the ladder, printing one line per step to w, and stops at the
// first failure that later steps depend on. ok is true when every step passed.
func Run(ctx context.Context, cfg pgconn.Config, w io.Writer, opts Options) (steps []Step, ok bool) {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = DefaultStepTimeout
	}
	if opts.SchemaVersion == nil {
		opts.SchemaVersion = defaultSchemaVersion
	}
	if opts.LookupIPAddr == nil {
		opts.LookupIPAddr = net.DefaultResolver.LookupIPAddr
	}
	r := &run{ctx: ctx, cfg: cfg, w: w, opts: opts}
	defer r.close()

	ladder := []struct {
		name     string
		fn       func(ctx context.Context) stepResult
		blocking bool // later steps cannot run if this one fails
	}{
		{StepConfig, r.config, true},
		{StepDNS, r.dns, true},
		{StepTCP, r.tcp, true},
		{StepTLS, r.tls, true},
		{StepAuth, r.auth, true},
		{StepSelect1, r.select1, true},
		{StepServer, r.server, false},
		{StepSchema, r.schema, false},
		{StepRows, r.rows, false},
	}
	ok = true
	for i, s := range ladder {
		res := r.step(s.name, s.fn)
		steps = append(steps, res)
		if res.OK {
			continue
		}
		ok = false
		if s.blocking {
			var rest []string
			for _, later := range ladder[i+1:] {
				rest = append(rest, later.name)
			}
			if len(rest) > 0 {
				fmt.Fprintf(w, "stopped at %s; not run: %s\n", s.name, strings.Join(rest, ", "))
			}
			return steps, false
		}
	}
	if ok {
		fmt.Fprintf(w, "all %d steps ok\n", len(steps))
	}
	return steps, ok
}

// run carries what earlier steps learned to later ones.
type run struct {
	ctx  context.Context
	cfg  pgconn.Config
	w    io.Writer
	opts Options

	connCfg *pgx.ConnConfig
	sslMode string
	addrs   []string // dialable addresses from dns (host:port), or the socket path
	reached string   // the address the tcp step connected to; later dials use it
	network string   // "tcp" or "unix"
	conn    *pgx.Conn
}

type stepResult struct {
	ok           bool
	detail, hint string
}

func pass(format string, args ...any) stepResult {
	return stepResult{ok: true, detail: fmt.Sprintf(format, args...)}
}

func fail(detail, hint string) stepResult { return stepResult{detail: detail, hint: hint} }

func (r *run) step(name string, fn func(ctx context.Context) stepResult) Step {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.StepTimeout)
	defer cancel()
	start := time.Now()
	res := fn(ctx)
	s := Step{Name: name, OK: res.ok, Detail: r.redact(res.detail), Hint: r.redact(res.hint), Elapsed: time.Since(start)}
	fmt.Fprintln(r.w, formatStep(s))
	return s
}

// redact masks every password in a line before it is shown: the patterns
// pgconn recognises (a URL's userinfo or password parameter, password=...)
// and the configured password itself, wherever a server or library error
// might have quoted it.
func (r *run) redact(s string) string {
	s = pgconn.Redact(s)
	if r.connCfg != nil && len(r.connCfg.Password) >= minRedactLen {
		s = strings.ReplaceAll(s, r.connCfg.Password, "xxxxx")
	}
	return s
}

// minRedactLen keeps a one- or two-character password from blanking out
// every occurrence of a common letter; such a password is no secret anyway.
const minRedactLen = 3

func formatStep(s Step) string {
	status := "ok"
	if !s.OK {
		status = "FAIL"
	}
	line := fmt.Sprintf("%-4s %-10s %s (%s)", status, s.Name, s.Detail, formatElapsed(s.Elapsed))
	if s.Hint != "" {
		line += " hint: " + s.Hint
	}
	return line
}

func formatElapsed(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func (r *run) close() {
	if r.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = r.conn.Close(ctx)
	}
}

func (r *run) config(context.Context) stepResult {
	vars := "none set, defaults"
	if len(r.cfg.Vars) > 0 {
		vars = strings.Join(r.cfg.Vars, ", ")
	}
	pc, err := r.cfg.PoolConfig()
	if err != nil {
		return fail(fmt.Sprintf("variables: %s; %v", vars, err),
			"fix the variable named above (DATABASE_URL or POSTGRES_HOST/PORT/USER/DB/SSLMODE, POSTGRES_PASSWORD_FILE)")
	}
	r.connCfg = pc.ConnConfig
	lookup := r.opts.LookupIPAddr
	r.connCfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		ips, err := lookup(ctx, host)
		addrs := make([]string, 0, len(ips))
		for _, ip := range ips {
			addrs = append(addrs, ip.String())
		}
		return addrs, err
	}
	r.sslMode = r.cfg.SSLModeOrDefault()
	res := pass("variables: %s; password: %s; target: %s; sslmode=%s; connect timeout %s",
		vars, r.cfg.PasswordSource(), r.cfg.Redacted(), r.sslMode, r.connCfg.ConnectTimeout)
	if r.cfg.PasswordSource() == "none" {
		res.hint = "no password configured: fine for trust/peer auth, otherwise set POSTGRES_PASSWORD_FILE"
	}
	return res
}

func (r *run) dns(ctx context.Context) stepResult {
	host, port := r.connCfg.Host, r.connCfg.Port
	if pgconn.IsUnixSocket(host) {
		r.network = "unix"
		r.addrs = []string{fmt.Sprintf("%s/.s.PGSQL.%d", host, port)}
		return pass("skipped: unix socket %s", r.addrs[0])
	}
	r.network = "tcp"
	ips, err := r.opts.LookupIPAddr(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return fail(fmt.Sprintf("%s does not resolve: %v", host, err),
				"check the host name in DATABASE_URL / POSTGRES_HOST; in compose use the service name, on the host use 127.0.0.1")
		case isTimeout(ctx, err):
			return fail(fmt.Sprintf("resolving %s: no answer within %s", host, r.opts.StepTimeout),
				"the DNS server does not answer: check /etc/resolv.conf and network, or use an IP address")
		default:
			return fail(fmt.Sprintf("resolving %s: %v", host, err), "check the host name and the resolver (/etc/resolv.conf)")
		}
	}
	var shown []string
	for _, ip := range ips {
		shown = append(shown, ip.String())
		r.addrs = append(r.addrs, pgconn.HostPort(ip.String(), port))
	}
	return pass("%s -> [%s]", host, strings.Join(shown, " "))
}

func (r *run) tcp(ctx context.Context) stepResult {
	var notes []string
	var last error
	for _, addr := range r.addrs {
		var d net.Dialer
		conn, err := d.DialContext(ctx, r.network, addr)
		if err == nil {
			_ = conn.Close()
			r.reached = addr
			detail := fmt.Sprintf("connected to %s", addr)
			if len(notes) > 0 {
				detail += " (" + strings.Join(notes, "; ") + ")"
			}
			return pass("%s", detail)
		}
		last = err
		notes = append(notes, fmt.Sprintf("%s: %s", addr, dialReason(ctx, err)))
	}
	return r.tcpFailure(ctx, last, strings.Join(notes, "; "))
}

func (r *run) tcpFailure(ctx context.Context, err error, detail string) stepResult {
	port := r.connCfg.Port
	switch {
	case r.network == "unix" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)):
		return fail(detail, "no server socket there: is PostgreSQL running, with this directory in unix_socket_directories and this port?")
	case r.network == "unix" && errors.Is(err, syscall.EACCES):
		return fail(detail, "permission denied on the socket directory: run as a user that may enter it")
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(detail, fmt.Sprintf("nothing listens on port %d there: is PostgreSQL running, on this port, and listening on this interface (listen_addresses)?", port))
	case isTimeout(ctx, err):
		return fail(detail, "packets are silently dropped: a firewall or security group, a wrong host, or PostgreSQL listening on another interface (listen_addresses)")
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return fail(detail, "no route to the host: check the address and the network between client and server")
	default:
		return fail(detail, "check host, port and network")
	}
}

func dialReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case isTimeout(ctx, err):
		return "no answer (timed out)"
	default:
		return err.Error()
	}
}

// tls probes the server's TLS support the way libpq does: an SSLRequest,
// then a handshake with the configuration pgx would use.
func (r *run) tls(ctx context.Context) stepResult {
	switch r.sslMode {
	case "disable", "allow":
		return pass("TLS not requested (sslmode=%s)", r.sslMode)
	}
	if r.network == "unix" {
		return pass("not used over a unix socket")
	}
	required := r.sslMode != "prefer"
	var d net.Dialer
	// The address tcp reached, not the first resolved: with ::1 refusing and
	// 127.0.0.1 answering, the first would fail a healthy server.
	raw, err := d.DialContext(ctx, r.network, r.reached)
	if err != nil {
		return fail(fmt.Sprintf("reconnecting to %s: %v", r.reached, err), "the server stopped accepting connections between steps; run again")
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	// SSLRequest: length 8, code 80877103.
	req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)
	answer := make([]byte, 1)
	_, err = raw.Write(req)
	if err == nil {
		_, err = io.ReadFull(raw, answer)
	}
	if err != nil {
		if isTimeout(ctx, err) {
			return fail(fmt.Sprintf("server accepted TCP but did not answer the PostgreSQL SSLRequest within %s", r.opts.StepTimeout),
				"whatever listens there does not speak PostgreSQL, or the server is hung: check the port and the process behind it")
		}
		return fail(fmt.Sprintf("SSLRequest: %v", err), "the server closed the connection: check its log; is this port really PostgreSQL?")
	}
	switch answer[0] {
	case 'N':
		if required {
			return fail(fmt.Sprintf("server does not offer TLS but sslmode=%s requires it", r.sslMode),
				"enable ssl on the server, or set sslmode=prefer/disable if the network is trusted")
		}
		return pass("server does not offer TLS; sslmode=prefer continues in plaintext")
	case 'S':
	default:
		return fail(fmt.Sprintf("unexpected answer %q to SSLRequest", answer[0]), "this port does not look like PostgreSQL")
	}
	tlsCfg := r.connCfg.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{InsecureSkipVerify: true} // prefer/require without verification
	}
	tc := tls.Client(raw, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		hint := "check the CA (POSTGRES_SSLROOTCERT, or sslrootcert in the URL) and the server certificate, or use sslmode=require if verification is not needed"
		if isTimeout(ctx, err) {
			hint = "the TLS handshake stalled: check the server's ssl settings"
		}
		if !required {
			return stepResult{ok: true, detail: fmt.Sprintf("TLS handshake failed (%v); sslmode=prefer falls back to plaintext", err), hint: hint}
		}
		return fail(fmt.Sprintf("TLS handshake: %v", err), hint)
	}
	st := tc.ConnectionState()
	// pgx verifies verify-ca in a callback, so VerifiedChains stays empty;
	// either way a failed verification would have failed the handshake.
	verified := "certificate not verified (sslmode=" + r.sslMode + ")"
	switch {
	case r.sslMode == "verify-ca":
		verified = "certificate chain verified, host name not checked (sslmode=verify-ca)"
	case len(st.VerifiedChains) > 0 || r.sslMode == "verify-full":
		verified = "certificate verified"
	}
	subject := ""
	if len(st.PeerCertificates) > 0 {
		subject = ", server certificate " + st.PeerCertificates[0].Subject.String()
	}
	return pass("%s %s%s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), subject, verified)
}

func (r *run) auth(ctx context.Context) stepResult {
	cc := r.connCfg.Copy()
	timeout := r.opts.StepTimeout
	if cc.ConnectTimeout > 0 && cc.ConnectTimeout < timeout {
		timeout = cc.ConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return r.authFailure(ctx, cc, err, timeout)
	}
	r.conn = conn
	transport := "plaintext"
	if _, ok := conn.PgConn().Conn().(*tls.Conn); ok {
		transport = "TLS"
	}
	if r.network == "unix" {
		transport = "unix socket"
	}
	return pass("authenticated as %s to database %s over %s (password: %s)", cc.User, cc.Database, transport, r.cfg.PasswordSource())
}

func (r *run) authFailure(ctx context.Context, cc *pgx.ConnConfig, err error, timeout time.Duration) stepResult {
	var pgErr *pgxconn.PgError
	if errors.As(err, &pgErr) {
		detail := fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
		switch pgErr.Code {
		case "28P01":
			// PostgreSQL reports an unknown role the same way, on purpose.
			hint := fmt.Sprintf("the password from %s is wrong for user %s, or that role does not exist: check the password file matches the role's password", r.cfg.PasswordSource(), cc.User)
			if r.cfg.PasswordSource() == "none" {
				hint = "the server wants a password and none is configured: set POSTGRES_PASSWORD_FILE"
			}
			return fail(detail, hint)
		case "28000":
			return fail(detail, "the server rejects this client: check pg_hba.conf has a line for this client address, user, database and SSL use, and that the role exists")
		case "3D000":
			return fail(detail, fmt.Sprintf("database %q does not exist: create it (createdb %s) or fix POSTGRES_DB / the URL path", cc.Database, cc.Database))
		case "42501":
			return fail(detail, fmt.Sprintf("user %s lacks CONNECT on database %s: GRANT CONNECT", cc.User, cc.Database))
		case "53300":
			return fail(detail, "the server is at max_connections: lower pool sizes (PG_MAX_CONNS) or raise max_connections")
		case "57P03":
			return fail(detail, "the server is starting up, shutting down or in recovery: wait and run again")
		}
		return fail(detail, "see the server log for this SQLSTATE")
	}
	if isTimeout(ctx, err) {
		return fail(fmt.Sprintf("server accepted TCP but did not answer the PostgreSQL startup within %s", timeout),
			"whatever listens there does not speak PostgreSQL, or the server is hung or overloaded: check the port and the server log")
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "x509") || strings.Contains(msg, "tls:"):
		return fail(msg, "TLS failed: check sslmode, the CA (POSTGRES_SSLROOTCERT, or sslrootcert in the URL) and the server certificate")
	case strings.Contains(msg, "server refused TLS"):
		return fail(msg, "the server has ssl off but sslmode requires TLS")
	}
	return fail(msg, "check the server log")
}

func (r *run) select1(ctx context.Context) stepResult {
	var one int
	if err := r.conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return r.queryFailure(ctx, "SELECT 1", err)
	}
	if one != 1 {
		return fail(fmt.Sprintf("SELECT 1 returned %d", one), "this is not a sane PostgreSQL server")
	}
	return pass("SELECT 1 = 1")
}

func (r *run) server(ctx context.Context) stepResult {
	var addr *string
	var port *int32
	var version, user, db string
	err := r.conn.QueryRow(ctx,
		"SELECT host(inet_server_addr()), inet_server_port(), version(), current_user, current_database()").
		Scan(&addr, &port, &version, &user, &db)
	if err != nil {
		return r.queryFailure(ctx, "server identity", err)
	}
	where := "unix socket"
	if addr != nil && port != nil {
		where = pgconn.HostPort(*addr, uint16(*port))
	}
	if i := strings.Index(version, " on "); i > 0 {
		version = version[:i]
	}
	detail := fmt.Sprintf("%s, %s, user %s, database %s", where, version, user, db)
	var listen string
	if err := r.conn.QueryRow(ctx, "SELECT current_setting('listen_addresses')").Scan(&listen); err == nil {
		detail += ", listen_addresses=" + strconv.Quote(listen)
	}
	return pass("%s", detail)
}

func (r *run) schema(ctx context.Context) stepResult {
	got, err := r.opts.SchemaVersion(ctx, r.conn)
	if err != nil {
		res := r.queryFailure(ctx, "schema version", err)
		res.hint = "could not read the schema version: run `memory migrate`, or check the role's privileges"
		return res
	}
	want := r.opts.ExpectedSchemaVersion
	switch {
	case want == 0:
		return pass("schema version %d (no expected version given)", got)
	case got < want:
		return fail(fmt.Sprintf("schema version %d, this binary needs %d", got, want), "run `memory migrate`")
	case got > want:
		return fail(fmt.Sprintf("schema version %d is newer than this binary's %d", got, want),
			"deploy the memory binary that matches the database, or restore the matching schema")
	default:
		return pass("schema version %d (as expected)", got)
	}
}

// rows reports how many episodes there are without reading the episodes
// table (a count(*) over it takes as long as the table is big, and waits
// behind any lock on it): the writing transaction's triggers keep the count
// per namespace in namespace_stats; without that table, the planner's
// estimate in pg_class.
func (r *run) rows(ctx context.Context) stepResult {
	var episodes, stats bool
	if err := r.conn.QueryRow(ctx,
		"SELECT to_regclass('episodes') IS NOT NULL, to_regclass('namespace_stats') IS NOT NULL").Scan(&episodes, &stats); err != nil {
		return r.queryFailure(ctx, "episodes lookup", err)
	}
	switch {
	case !episodes:
		return stepResult{ok: true, detail: "no episodes table yet", hint: "run `memory migrate`"}
	case stats:
		var n, namespaces int64
		if err := r.conn.QueryRow(ctx,
			"SELECT coalesce(sum(episode_count), 0)::bigint, count(*) FILTER (WHERE episode_count > 0) FROM namespace_stats").
			Scan(&n, &namespaces); err != nil {
			return r.queryFailure(ctx, "read namespace_stats", err)
		}
		return pass("%d episodes in %d namespaces (from namespace_stats)", n, namespaces)
	default:
		var estimate float64
		if err := r.conn.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = 'episodes'::regclass").Scan(&estimate); err != nil {
			return r.queryFailure(ctx, "read pg_class", err)
		}
		if estimate < 0 { // never vacuumed or analyzed
			return pass("episodes table present, not yet analyzed (no row estimate)")
		}
		return pass("about %.0f episodes (planner estimate)", estimate)
	}
}

func (r *run) queryFailure(ctx context.Context, what string, err error) stepResult {
	if isTimeout(ctx, err) {
		return fail(fmt.Sprintf("%s: no answer within %s", what, r.opts.StepTimeout),
			"the server accepted the session but does not answer queries: check locks, load and the server log")
	}
	var pgErr *pgxconn.PgError
	if errors.As(err, &pgErr) {
		return fail(fmt.Sprintf("%s: %s (SQLSTATE %s)", what, pgErr.Message, pgErr.Code), "see the server log for this SQLSTATE")
	}
	return fail(fmt.Sprintf("%s: %v", what, err), "the connection broke: check the server log")
}

// defaultSchemaVersion reads the version table the migrations keep (the
// store owns its name); 0 means never migrated.
func defaultSchemaVersion(ctx context.Context, conn *pgx.Conn) (int64, error) {
	v, err := store.ReadSchemaVersion(ctx, conn)
	if errors.Is(err, store.ErrNotMigrated) {
		return 0, nil
	}
	return v, err
}

// isTimeout reports whether err comes from a deadline: the step's context,
// pgx's connect timeout, or a socket deadline.
func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || pgxconn.Timeout(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return ctx.Err() != nil
}
