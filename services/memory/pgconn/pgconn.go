// Package pgconn turns the memory service's environment into a pgx pool
// configuration. Secrets come from files only: there is no default password,
// and a plain POSTGRES_PASSWORD or a password written into DATABASE_URL is
// refused (the whole URL may come from a file, DATABASE_URL_FILE).
package pgconn

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults applied by PoolConfig to zero fields.
const (
	DefaultHost              = "127.0.0.1"
	DefaultPort              = 5432
	DefaultUser              = "brain"
	DefaultDatabase          = "brain"
	DefaultSSLMode           = "prefer" // libpq's default: TLS when the server offers it
	DefaultConnectTimeout    = 2 * time.Second
	DefaultStatementTimeout  = 5 * time.Second
	DefaultMaxConns          = 16
	DefaultHealthCheckPeriod = 5 * time.Second
	DefaultMaxConnLifetime   = 30 * time.Minute
)

// Config says where PostgreSQL is and how the pool behaves. Zero fields take
// the defaults above, except that values written into URL (sslmode,
// connect_timeout, pool_max_conns, ...) win over defaults but not over fields
// set explicitly.
type Config struct {
	URL          string // DATABASE_URL or the content of DATABASE_URL_FILE; when empty, built from the fields below
	URLFile      string // the file URL was read from, if any (a password in URL is then allowed)
	Host         string // host name, IP, or unix socket directory (starts with "/")
	Port         int
	User         string
	Database     string
	PasswordFile string
	SSLMode      string // disable, allow, prefer, require, verify-ca, verify-full
	SSLRootCert  string // CA file (PEM) that verifies the server, or "system" for the system's roots

	ConnectTimeout    time.Duration // whole connection set-up, TLS and auth included
	StatementTimeout  time.Duration // sent as the statement_timeout runtime parameter
	MaxConns          int32
	MinConns          int32 // 0: start-up never waits for PostgreSQL
	HealthCheckPeriod time.Duration
	MaxConnLifetime   time.Duration

	// Vars lists the environment variables FromEnv found set, for diagnostics.
	Vars []string
}

// Environment variables FromEnv reads.
const (
	EnvURL              = "DATABASE_URL"
	EnvURLFile          = "DATABASE_URL_FILE"
	EnvHost             = "POSTGRES_HOST"
	EnvPort             = "POSTGRES_PORT"
	EnvUser             = "POSTGRES_USER"
	EnvDatabase         = "POSTGRES_DB"
	EnvPasswordFile     = "POSTGRES_PASSWORD_FILE"
	EnvSSLMode          = "POSTGRES_SSLMODE"
	EnvSSLRootCert      = "POSTGRES_SSLROOTCERT"
	EnvConnectTimeout   = "PG_CONNECT_TIMEOUT"
	EnvStatementTimeout = "PG_STATEMENT_TIMEOUT"
	EnvMaxConns         = "PG_MAX_CONNS"
	EnvMinConns         = "PG_MIN_CONNS"
	EnvHealthCheck      = "PG_HEALTH_CHECK_PERIOD"
	EnvMaxConnLifetime  = "PG_MAX_CONN_LIFETIME"
)

var sslModes = map[string]bool{
	"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true,
}

// FromEnv reads the configuration from environment variables (getenv is
// os.Getenv in production). Unset variables leave fields zero so PoolConfig
// applies defaults or the URL's own parameters.
func FromEnv(getenv func(string) string) (Config, error) {
	// Plain-text passwords in the environment leak through /proc, docker
	// inspect and crash dumps; secrets come from files only.
	for _, v := range []string{"POSTGRES_PASSWORD", "PGPASSWORD"} {
		if getenv(v) != "" {
			return Config{}, fmt.Errorf("%s is set: passwords are read from files only; put the password in a file and set %s to its path", v, EnvPasswordFile)
		}
	}
	var c Config
	var errs []string
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
			c.Vars = append(c.Vars, name)
		}
	}
	dur := func(name string, dst *time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		c.Vars = append(c.Vars, name)
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a positive duration such as 2s or 500ms", name, v))
			return
		}
		*dst = d
	}
	str(EnvURL, &c.URL)
	str(EnvURLFile, &c.URLFile)
	str(EnvHost, &c.Host)
	str(EnvUser, &c.User)
	str(EnvDatabase, &c.Database)
	str(EnvPasswordFile, &c.PasswordFile)
	str(EnvSSLMode, &c.SSLMode)
	str(EnvSSLRootCert, &c.SSLRootCert)
	if v := strings.TrimSpace(getenv(EnvPort)); v != "" {
		c.Vars = append(c.Vars, EnvPort)
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Sprintf("%s=%q: want a port number 1-65535", EnvPort, v))
		}
		c.Port = p
	}
	dur(EnvConnectTimeout, &c.ConnectTimeout)
	dur(EnvStatementTimeout, &c.StatementTimeout)
	dur(EnvHealthCheck, &c.HealthCheckPeriod)
	dur(EnvMaxConnLifetime, &c.MaxConnLifetime)
	count := func(name string, min int64, dst *int32) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		c.Vars = append(c.Vars, name)
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < min {
			errs = append(errs, fmt.Sprintf("%s=%q: want an integer of at least %d", name, v, min))
		}
		*dst = int32(n)
	}
	count(EnvMaxConns, 1, &c.MaxConns)
	count(EnvMinConns, 0, &c.MinConns)
	if c.MaxConns > 0 && c.MinConns > c.MaxConns {
		errs = append(errs, fmt.Sprintf("%s=%d exceeds %s=%d", EnvMinConns, c.MinConns, EnvMaxConns, c.MaxConns))
	}
	if c.SSLMode != "" && !sslModes[c.SSLMode] {
		errs = append(errs, fmt.Sprintf("%s=%q: want one of disable, allow, prefer, require, verify-ca, verify-full", EnvSSLMode, c.SSLMode))
	}
	urlVar := EnvURL
	switch {
	case c.URL != "" && c.URLFile != "":
		errs = append(errs, fmt.Sprintf("%s and %s are both set: use one", EnvURL, EnvURLFile))
	case c.URL != "" && c.urlHasPassword():
		// Environment variables leak (/proc, docker inspect, crash dumps);
		// platforms that hand out URLs with passwords can mount them as a file.
		errs = append(errs, fmt.Sprintf("%s contains a password: secrets are read from files only; put the password in a file and set %s to its path, or put the whole URL in a file and set %s", EnvURL, EnvPasswordFile, EnvURLFile))
	case c.URLFile != "":
		urlVar = EnvURLFile
		u, err := readSecretFile(EnvURLFile, c.URLFile)
		if err != nil {
			errs = append(errs, err.Error())
		}
		c.URL = strings.TrimSpace(u)
	}
	if c.URL != "" || c.URLFile != "" {
		// The URL names the target; the split variables would be silently ignored.
		for _, name := range []string{EnvHost, EnvPort, EnvUser, EnvDatabase, EnvSSLMode, EnvSSLRootCert} {
			if getenv(name) != "" {
				errs = append(errs, fmt.Sprintf("%s and %s are both set: use one way to name the server", urlVar, name))
			}
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("postgres config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// PoolConfig builds the pgx pool configuration, reading the password file.
func (c Config) PoolConfig() (*pgxpool.Config, error) {
	if c.URL != "" && c.urlHasPassword() && c.PasswordFile != "" {
		return nil, fmt.Errorf("postgres config: %s contains a password and %s is set; use one", c.urlSource(), EnvPasswordFile)
	}
	if c.SSLMode != "" && !sslModes[c.SSLMode] {
		return nil, fmt.Errorf("postgres config: sslmode %q: want one of disable, allow, prefer, require, verify-ca, verify-full", c.SSLMode)
	}
	connString := c.URL
	if connString == "" {
		connString = c.fieldsDSN()
	}
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx errors can quote the connection string; never echo a password.
		return nil, fmt.Errorf("postgres config: parse %s: %s", c.Redacted(), Redact(err.Error()))
	}
	if c.PasswordFile != "" {
		pw, err := readSecretFile(EnvPasswordFile, c.PasswordFile)
		if err != nil {
			return nil, err
		}
		pc.ConnConfig.Password = pw // TLS/host fallbacks share it
	}

	urlParams := c.urlParams()
	if c.ConnectTimeout > 0 || !urlParams["connect_timeout"] {
		pc.ConnConfig.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	}
	if c.StatementTimeout > 0 || !urlParams["statement_timeout"] {
		st := cmp.Or(c.StatementTimeout, DefaultStatementTimeout)
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(st.Milliseconds(), 10)
	}
	if c.MaxConns > 0 || !urlParams["pool_max_conns"] {
		pc.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	}
	if c.MinConns > 0 || !urlParams["pool_min_conns"] {
		pc.MinConns = c.MinConns
	}
	if c.HealthCheckPeriod > 0 || !urlParams["pool_health_check_period"] {
		pc.HealthCheckPeriod = cmp.Or(c.HealthCheckPeriod, DefaultHealthCheckPeriod)
	}
	if c.MaxConnLifetime > 0 || !urlParams["pool_max_conn_lifetime"] {
		pc.MaxConnLifetime = cmp.Or(c.MaxConnLifetime, DefaultMaxConnLifetime)
	}
	if pc.MinConns > pc.MaxConns {
		return nil, fmt.Errorf("postgres config: MinConns %d > MaxConns %d", pc.MinConns, pc.MaxConns)
	}
	return pc, nil
}

// PasswordSource says where the password comes from:
// "DATABASE_URL_FILE (/path)", "POSTGRES_PASSWORD_FILE (/path)", "none", or
// "DATABASE_URL" for a Config built in code. There is never a built-in one.
func (c Config) PasswordSource() string {
	switch {
	case c.URL != "" && c.urlHasPassword():
		return c.urlSource()
	case c.PasswordFile != "":
		return fmt.Sprintf("%s (%s)", EnvPasswordFile, c.PasswordFile)
	default:
		return "none"
	}
}

// urlSource names where URL came from, for messages.
func (c Config) urlSource() string {
	if c.URLFile != "" {
		return fmt.Sprintf("%s (%s)", EnvURLFile, c.URLFile)
	}
	return EnvURL
}

// Redacted is the connection target with any password masked, for logs.
func (c Config) Redacted() string {
	if c.URL == "" {
		return c.fieldsDSN()
	}
	return Redact(c.URL)
}

// SSLModeOrDefault is the effective sslmode: the field, else the URL's, else prefer.
func (c Config) SSLModeOrDefault() string {
	if c.SSLMode != "" {
		return c.SSLMode
	}
	if c.URL != "" {
		if m := c.urlSSLMode(); m != "" {
			return m
		}
	}
	return DefaultSSLMode
}

// fieldsDSN renders the split fields as a keyword/value string (it has no
// password: that is added from the file after parsing).
func (c Config) fieldsDSN() string {
	kv := []string{
		"host=" + quoteDSN(cmp.Or(c.Host, DefaultHost)),
		"port=" + strconv.Itoa(cmp.Or(c.Port, DefaultPort)),
		"user=" + quoteDSN(cmp.Or(c.User, DefaultUser)),
		"dbname=" + quoteDSN(cmp.Or(c.Database, DefaultDatabase)),
		"sslmode=" + quoteDSN(cmp.Or(c.SSLMode, DefaultSSLMode)),
	}
	if c.SSLRootCert != "" {
		kv = append(kv, "sslrootcert="+quoteDSN(c.SSLRootCert))
	}
	return strings.Join(kv, " ")
}

// urlHasPassword reports a password in the URL's userinfo, a password (or
// sslpassword) query parameter, or a password keyword of a key/value string.
func (c Config) urlHasPassword() bool {
	if u, err := url.Parse(c.URL); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			return true
		}
		q := u.Query()
		for _, k := range secretParams {
			if q.Has(k) {
				return true
			}
		}
		return false
	}
	return dsnPasswordRE.MatchString(c.URL) || urlPasswordRE.MatchString(c.URL) || queryPasswordRE.MatchString(c.URL)
}

// urlParams reports which parameters the URL sets explicitly.
func (c Config) urlParams() map[string]bool {
	set := map[string]bool{}
	if c.URL == "" {
		return set
	}
	if u, err := url.Parse(c.URL); err == nil && u.Scheme != "" {
		for k := range u.Query() {
			set[k] = true
		}
		return set
	}
	for _, m := range dsnKeyRE.FindAllStringSubmatch(c.URL, -1) {
		set[m[1]] = true
	}
	return set
}

func (c Config) urlSSLMode() string {
	if u, err := url.Parse(c.URL); err == nil && u.Scheme != "" {
		return u.Query().Get("sslmode")
	}
	if m := dsnSSLModeRE.FindStringSubmatch(c.URL); m != nil {
		return strings.Trim(m[1], "'")
	}
	return ""
}

// IsUnixSocket reports whether host names a unix socket directory.
func IsUnixSocket(host string) bool { return strings.HasPrefix(host, "/") }

// HostPort joins a host and port for display and dialing.
func HostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// readSecretFile reads a secret file named by the variable env; the content
// never appears in an error.
func readSecretFile(env, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", env, path, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s %s is empty", env, path)
	}
	return v, nil
}

// secretParams are the connection parameters that carry secrets: the
// password and the passphrase of the client key.
var secretParams = []string{"password", "sslpassword"}

var (
	dsnPasswordRE   = regexp.MustCompile(`(^|\s)((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)
	dsnKeyRE        = regexp.MustCompile(`(?:^|\s)([a-z_]+)\s*=`)
	dsnSSLModeRE    = regexp.MustCompile(`(?:^|\s)sslmode\s*=\s*('[^']*'|\S+)`)
	urlPasswordRE   = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	queryPasswordRE = regexp.MustCompile("([?&](?:ssl)?password=)[^&#\\s`'\"]*")
)

// Redact masks every password it recognises in s: in keyword/value strings
// (password=..., sslpassword=...), and in URLs anywhere in the text, both the
// userinfo's and the password/sslpassword query parameters.
func Redact(s string) string {
	s = dsnPasswordRE.ReplaceAllString(s, "${1}${2}=xxxxx")
	s = urlPasswordRE.ReplaceAllString(s, "${1}xxxxx@")
	return queryPasswordRE.ReplaceAllString(s, "${1}xxxxx")
}

func quoteDSN(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
