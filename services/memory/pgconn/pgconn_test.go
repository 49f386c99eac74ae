package pgconn

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestFromEnv(t *testing.T) {
	urlFile := writeFile(t, "postgres://u:hunter2@h/db?sslmode=verify-full\n")
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string // substring; "" means success
	}{
		{
			name: "nothing set leaves defaults to PoolConfig",
			env:  map[string]string{},
			want: Config{},
		},
		{
			name: "split variables",
			env: map[string]string{
				"POSTGRES_HOST": "db.internal", "POSTGRES_PORT": "6543", "POSTGRES_USER": "mem",
				"POSTGRES_DB": "memdb", "POSTGRES_PASSWORD_FILE": "/run/secrets/pg", "POSTGRES_SSLMODE": "require",
				"PG_CONNECT_TIMEOUT": "750ms", "PG_STATEMENT_TIMEOUT": "10s", "PG_MAX_CONNS": "4",
			},
			want: Config{
				Host: "db.internal", Port: 6543, User: "mem", Database: "memdb", PasswordFile: "/run/secrets/pg",
				SSLMode: "require", ConnectTimeout: 750 * time.Millisecond, StatementTimeout: 10 * time.Second, MaxConns: 4,
				Vars: []string{"POSTGRES_HOST", "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE", "POSTGRES_SSLMODE",
					"POSTGRES_PORT", "PG_CONNECT_TIMEOUT", "PG_STATEMENT_TIMEOUT", "PG_MAX_CONNS"},
			},
		},
		{
			name: "URL with password file",
			env:  map[string]string{"DATABASE_URL": "postgres://u@h/db", "POSTGRES_PASSWORD_FILE": "/pw"},
			want: Config{URL: "postgres://u@h/db", PasswordFile: "/pw", Vars: []string{"DATABASE_URL", "POSTGRES_PASSWORD_FILE"}},
		},
		{
			name:    "plain POSTGRES_PASSWORD refused",
			env:     map[string]string{"POSTGRES_PASSWORD": "hunter2", "POSTGRES_HOST": "h"},
			wantErr: "POSTGRES_PASSWORD is set: passwords are read from files only; put the password in a file and set POSTGRES_PASSWORD_FILE",
		},
		{
			name:    "PGPASSWORD refused too",
			env:     map[string]string{"PGPASSWORD": "hunter2"},
			wantErr: "PGPASSWORD is set",
		},
		{
			name:    "bad port",
			env:     map[string]string{"POSTGRES_PORT": "70000"},
			wantErr: "POSTGRES_PORT=\"70000\"",
		},
		{
			name:    "bad durations and max conns are all reported",
			env:     map[string]string{"PG_CONNECT_TIMEOUT": "2", "PG_STATEMENT_TIMEOUT": "-1s", "PG_MAX_CONNS": "0"},
			wantErr: `PG_CONNECT_TIMEOUT="2": want a positive duration such as 2s or 500ms; PG_STATEMENT_TIMEOUT="-1s": want a positive duration such as 2s or 500ms; PG_MAX_CONNS="0": want an integer of at least 1`,
		},
		{
			name: "pool sizes and periods",
			env: map[string]string{"PG_MIN_CONNS": "2", "PG_MAX_CONNS": "8", "PG_HEALTH_CHECK_PERIOD": "1s",
				"PG_MAX_CONN_LIFETIME": "10m"},
			want: Config{MinConns: 2, MaxConns: 8, HealthCheckPeriod: time.Second, MaxConnLifetime: 10 * time.Minute,
				Vars: []string{"PG_HEALTH_CHECK_PERIOD", "PG_MAX_CONN_LIFETIME", "PG_MAX_CONNS", "PG_MIN_CONNS"}},
		},
		{
			name:    "min conns above max",
			env:     map[string]string{"PG_MIN_CONNS": "9", "PG_MAX_CONNS": "8"},
			wantErr: "PG_MIN_CONNS=9 exceeds PG_MAX_CONNS=8",
		},
		{
			name:    "bad sslmode",
			env:     map[string]string{"POSTGRES_SSLMODE": "on"},
			wantErr: "POSTGRES_SSLMODE=\"on\"",
		},
		{
			name:    "password in the URL's userinfo refused",
			env:     map[string]string{"DATABASE_URL": "postgres://u:hunter2@h/db"},
			wantErr: "DATABASE_URL contains a password: secrets are read from files only; put the password in a file and set POSTGRES_PASSWORD_FILE to its path, or put the whole URL in a file and set DATABASE_URL_FILE",
		},
		{
			name:    "password query parameter refused",
			env:     map[string]string{"DATABASE_URL": "postgres://u@h/db?sslmode=require&password=hunter2"},
			wantErr: "DATABASE_URL contains a password",
		},
		{
			name:    "empty userinfo password refused too",
			env:     map[string]string{"DATABASE_URL": "postgres://u:@h/db"},
			wantErr: "DATABASE_URL contains a password",
		},
		{
			name:    "client key passphrase refused",
			env:     map[string]string{"DATABASE_URL": "postgres://u@h/db?sslpassword=hunter2"},
			wantErr: "DATABASE_URL contains a password",
		},
		{
			name:    "password keyword refused",
			env:     map[string]string{"DATABASE_URL": "host=h user=u password=hunter2"},
			wantErr: "DATABASE_URL contains a password",
		},
		{
			name:    "password in an unparsable URL refused",
			env:     map[string]string{"DATABASE_URL": "postgres://u:hunter2@h:notaport/db"},
			wantErr: "DATABASE_URL contains a password",
		},
		{
			name: "URL file may hold the password",
			env:  map[string]string{"DATABASE_URL_FILE": urlFile},
			want: Config{URL: "postgres://u:hunter2@h/db?sslmode=verify-full", URLFile: urlFile, Vars: []string{"DATABASE_URL_FILE"}},
		},
		{
			name:    "missing URL file",
			env:     map[string]string{"DATABASE_URL_FILE": "/nonexistent/url"},
			wantErr: "read DATABASE_URL_FILE /nonexistent/url",
		},
		{
			name:    "empty URL file",
			env:     map[string]string{"DATABASE_URL_FILE": writeFile(t, "\n")},
			wantErr: "is empty",
		},
		{
			name:    "URL and URL file conflict",
			env:     map[string]string{"DATABASE_URL": "postgres://u@h/db", "DATABASE_URL_FILE": urlFile},
			wantErr: "DATABASE_URL and DATABASE_URL_FILE are both set",
		},
		{
			name:    "URL file and split variables conflict",
			env:     map[string]string{"DATABASE_URL_FILE": urlFile, "POSTGRES_PORT": "5433"},
			wantErr: "DATABASE_URL_FILE and POSTGRES_PORT are both set",
		},
		{
			name: "CA file for verify-full",
			env:  map[string]string{"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": "/run/postgres-ca/ca.crt"},
			want: Config{SSLMode: "verify-full", SSLRootCert: "/run/postgres-ca/ca.crt", Vars: []string{"POSTGRES_SSLMODE", "POSTGRES_SSLROOTCERT"}},
		},
		{
			name:    "URL and CA file variable conflict",
			env:     map[string]string{"DATABASE_URL": "postgres://u@h/db", "POSTGRES_SSLROOTCERT": "/ca.crt"},
			wantErr: "DATABASE_URL and POSTGRES_SSLROOTCERT are both set",
		},
		{
			name:    "URL and split variables conflict",
			env:     map[string]string{"DATABASE_URL": "postgres://u@h/db", "POSTGRES_HOST": "other"},
			wantErr: "DATABASE_URL and POSTGRES_HOST are both set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromEnv(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPoolConfig(t *testing.T) {
	pwFile := writeFile(t, "s3cret pass\r\n")
	tests := []struct {
		name    string
		cfg     Config
		check   func(t *testing.T, got poolView)
		wantErr string
	}{
		{
			name: "defaults",
			cfg:  Config{},
			check: func(t *testing.T, got poolView) {
				want := poolView{Host: "127.0.0.1", Port: 5432, User: "brain", Database: "brain", Password: "",
					ConnectTimeout: 2 * time.Second, StatementTimeout: "5000", MaxConns: 16, MinConns: 0,
					HealthCheck: 5 * time.Second, Lifetime: 30 * time.Minute, TLS: true, PlainFallback: true}
				assertView(t, got, want)
			},
		},
		{
			name: "fields and password file",
			cfg: Config{Host: "db", Port: 6000, User: "o'brien", Database: "my db", PasswordFile: pwFile, SSLMode: "disable",
				ConnectTimeout: time.Second, StatementTimeout: 250 * time.Millisecond, MaxConns: 3, MinConns: 1,
				HealthCheckPeriod: time.Second, MaxConnLifetime: time.Minute},
			check: func(t *testing.T, got poolView) {
				want := poolView{Host: "db", Port: 6000, User: "o'brien", Database: "my db", Password: "s3cret pass",
					ConnectTimeout: time.Second, StatementTimeout: "250", MaxConns: 3, MinConns: 1,
					HealthCheck: time.Second, Lifetime: time.Minute, TLS: false, PlainFallback: false}
				assertView(t, got, want)
			},
		},
		{
			name: "URL parameters win over defaults",
			cfg:  Config{URL: "postgres://u:p@h:1234/d?sslmode=require&connect_timeout=7&statement_timeout=900&pool_max_conns=5"},
			check: func(t *testing.T, got poolView) {
				want := poolView{Host: "h", Port: 1234, User: "u", Database: "d", Password: "p",
					ConnectTimeout: 7 * time.Second, StatementTimeout: "900", MaxConns: 5, MinConns: 0,
					HealthCheck: 5 * time.Second, Lifetime: 30 * time.Minute, TLS: true, PlainFallback: false}
				assertView(t, got, want)
			},
		},
		{
			name: "explicit fields win over URL parameters",
			cfg:  Config{URL: "postgres://u@h/d?sslmode=disable&connect_timeout=7&pool_max_conns=5", PasswordFile: pwFile, ConnectTimeout: 300 * time.Millisecond, MaxConns: 2},
			check: func(t *testing.T, got poolView) {
				want := poolView{Host: "h", Port: 5432, User: "u", Database: "d", Password: "s3cret pass",
					ConnectTimeout: 300 * time.Millisecond, StatementTimeout: "5000", MaxConns: 2, MinConns: 0,
					HealthCheck: 5 * time.Second, Lifetime: 30 * time.Minute}
				assertView(t, got, want)
			},
		},
		{
			name: "unix socket host",
			cfg:  Config{Host: "/var/run/postgresql", SSLMode: "disable"},
			check: func(t *testing.T, got poolView) {
				if got.Host != "/var/run/postgresql" || got.TLS {
					t.Fatalf("host %q tls %v", got.Host, got.TLS)
				}
			},
		},
		{
			name: "system roots verify the server",
			cfg:  Config{Host: "db", SSLMode: "verify-full", SSLRootCert: "system"},
			check: func(t *testing.T, got poolView) {
				if !got.TLS || !got.RootCAs || got.PlainFallback {
					t.Fatalf("tls %v roots %v plaintext fallback %v; want verified TLS only", got.TLS, got.RootCAs, got.PlainFallback)
				}
			},
		},
		{
			name:    "CA file reaches pgx",
			cfg:     Config{SSLMode: "verify-full", SSLRootCert: "/nonexistent/ca.crt"},
			wantErr: "unable to read CA file",
		},
		{
			name:    "missing password file",
			cfg:     Config{PasswordFile: "/nonexistent/pw"},
			wantErr: "read POSTGRES_PASSWORD_FILE /nonexistent/pw",
		},
		{
			name:    "empty password file",
			cfg:     Config{PasswordFile: writeFile(t, "\n")},
			wantErr: "is empty",
		},
		{
			name:    "URL password and password file conflict",
			cfg:     Config{URL: "postgres://u:p@h/d", PasswordFile: pwFile},
			wantErr: "DATABASE_URL contains a password and POSTGRES_PASSWORD_FILE is set",
		},
		{
			name:    "URL file's password and password file conflict",
			cfg:     Config{URL: "postgres://u@h/d?password=topsecret", URLFile: "/run/secrets/url", PasswordFile: pwFile},
			wantErr: "DATABASE_URL_FILE (/run/secrets/url) contains a password and POSTGRES_PASSWORD_FILE is set",
		},
		{
			name:    "unparsable URL does not echo its password",
			cfg:     Config{URL: "postgres://u:topsecret@h:notaport/d"},
			wantErr: "parse",
		},
		{
			name:    "min above max",
			cfg:     Config{MinConns: 5, MaxConns: 2},
			wantErr: "MinConns 5 > MaxConns 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc, err := tt.cfg.PoolConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cc := pc.ConnConfig
			v := poolView{Host: cc.Host, Port: cc.Port, User: cc.User, Database: cc.Database, Password: cc.Password,
				ConnectTimeout: cc.ConnectTimeout, StatementTimeout: cc.RuntimeParams["statement_timeout"],
				MaxConns: pc.MaxConns, MinConns: pc.MinConns, HealthCheck: pc.HealthCheckPeriod, Lifetime: pc.MaxConnLifetime,
				TLS: cc.TLSConfig != nil, RootCAs: cc.TLSConfig != nil && cc.TLSConfig.RootCAs != nil}
			for _, fb := range cc.Fallbacks {
				if fb.TLSConfig == nil {
					v.PlainFallback = true
				}
			}
			tt.check(t, v)
		})
	}
}

// poolView flattens the fields of a pgxpool.Config the tests compare.
type poolView struct {
	Host, User, Database, Password string
	Port                           uint16
	ConnectTimeout                 time.Duration
	StatementTimeout               string
	MaxConns, MinConns             int32
	HealthCheck, Lifetime          time.Duration
	TLS, PlainFallback, RootCAs    bool
}

func assertView(t *testing.T, got, want poolView) {
	t.Helper()
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestPasswordSourceAndRedacted(t *testing.T) {
	tests := []struct {
		cfg          Config
		wantSource   string
		wantRedacted string
	}{
		{Config{URL: "postgres://u:topsecret@h:5432/d?sslmode=disable"}, "DATABASE_URL", "postgres://u:xxxxx@h:5432/d?sslmode=disable"},
		{Config{URL: "postgres://u@h/d"}, "none", "postgres://u@h/d"},
		{Config{URL: "postgres://u@h/d?password=topsecret&sslmode=disable"}, "DATABASE_URL", "postgres://u@h/d?password=xxxxx&sslmode=disable"},
		{Config{URL: "postgres://u@h/d?sslmode=disable&sslpassword=topsecret"}, "DATABASE_URL", "postgres://u@h/d?sslmode=disable&sslpassword=xxxxx"},
		{Config{URL: "postgres://u:topsecret@h/d", URLFile: "/run/secrets/url"}, "DATABASE_URL_FILE (/run/secrets/url)", "postgres://u:xxxxx@h/d"},
		{Config{URL: "postgres://u:topsecret@h:bad/d?password=topsecret"}, "DATABASE_URL", "postgres://u:xxxxx@h:bad/d?password=xxxxx"},
		{Config{URL: "host=h sslpassword=topsecret"}, "DATABASE_URL", "host=h sslpassword=xxxxx"},
		{Config{URL: "postgres://u@h/d", PasswordFile: "/run/secrets/pg"}, "POSTGRES_PASSWORD_FILE (/run/secrets/pg)", "postgres://u@h/d"},
		{Config{URL: "host=h user=u password='top secret' dbname=d"}, "DATABASE_URL", "host=h user=u password=xxxxx dbname=d"},
		{Config{URL: "host=h password=topsecret"}, "DATABASE_URL", "host=h password=xxxxx"},
		{Config{Host: "db", PasswordFile: "/pw"}, "POSTGRES_PASSWORD_FILE (/pw)", "host=db port=5432 user=brain dbname=brain sslmode=prefer"},
		{Config{Host: "db", SSLMode: "verify-full", SSLRootCert: "/ca dir/ca.crt"}, "none", "host=db port=5432 user=brain dbname=brain sslmode=verify-full sslrootcert='/ca dir/ca.crt'"},
		{Config{}, "none", "host=127.0.0.1 port=5432 user=brain dbname=brain sslmode=prefer"},
	}
	for _, tt := range tests {
		if got := tt.cfg.PasswordSource(); got != tt.wantSource {
			t.Errorf("PasswordSource(%+v) = %q, want %q", tt.cfg, got, tt.wantSource)
		}
		got := tt.cfg.Redacted()
		if got != tt.wantRedacted {
			t.Errorf("Redacted(%+v) = %q, want %q", tt.cfg, got, tt.wantRedacted)
		}
		if strings.Contains(got, "topsecret") || strings.Contains(got, "top secret") {
			t.Errorf("Redacted leaks the password: %q", got)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dial postgres://u:topsecret@h/d: refused", "dial postgres://u:xxxxx@h/d: refused"},
		{"cannot parse `postgres://u@h/d?password=topsecret`: bad", "cannot parse `postgres://u@h/d?password=xxxxx`: bad"},
		{"host=h password='top secret' sslpassword=topsecret", "host=h password=xxxxx sslpassword=xxxxx"},
		{"nothing secret here", "nothing secret here"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSSLModeOrDefault(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "prefer"},
		{Config{SSLMode: "require"}, "require"},
		{Config{URL: "postgres://h/d?sslmode=verify-full"}, "verify-full"},
		{Config{URL: "host=h sslmode=disable"}, "disable"},
		{Config{URL: "postgres://h/d"}, "prefer"},
	}
	for _, tt := range tests {
		if got := tt.cfg.SSLModeOrDefault(); got != tt.want {
			t.Errorf("SSLModeOrDefault(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}
