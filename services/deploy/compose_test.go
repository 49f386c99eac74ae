package deploy

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const observabilityProfile = "observability"

// loadCompose loads compose.yaml the way `docker compose` does, with a fixed
// environment (not the developer's) so interpolation defaults are what is
// tested.
func loadCompose(t *testing.T, env []string, profiles ...string) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root := rootPath(t, "")
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load compose.yaml (profiles %v): %v", profiles, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose: no service %q (have %v)", name, p.ServiceNames())
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// secretPath checks that a *_FILE variable names a secret the service mounts
// from a file, and returns that secret's name.
func secretPath(t *testing.T, p *types.Project, s types.ServiceConfig, key string) string {
	t.Helper()
	path := env(s, key)
	name, ok := strings.CutPrefix(path, "/run/secrets/")
	if !ok {
		t.Fatalf("%s: %s=%q is not under /run/secrets/", s.Name, key, path)
	}
	if !slices.ContainsFunc(s.Secrets, func(r types.ServiceSecretConfig) bool {
		target := r.Target
		if target == "" {
			target = r.Source
		}
		return target == name || target == path
	}) {
		t.Fatalf("%s: %s=%q but the service mounts no such secret (%+v)", s.Name, key, path, s.Secrets)
	}
	def, ok := p.Secrets[name]
	if !ok || def.File == "" || def.Environment != "" || def.Content != "" {
		t.Fatalf("%s: secret %q must come from a file, got %+v", s.Name, name, def)
	}
	return name
}

func TestComposeProfiles(t *testing.T) {
	core := []string{"memory", "orchestrator", "postgres"}
	observability := []string{"grafana", "prometheus"}

	p := loadCompose(t, nil)
	if got := p.ServiceNames(); !slices.Equal(sorted(got), core) {
		t.Errorf("default services = %v, want %v", got, core)
	}
	if got := p.DisabledServiceNames(); !slices.Equal(sorted(got), observability) {
		t.Errorf("services behind a profile = %v, want %v", got, observability)
	}

	all := loadCompose(t, nil, observabilityProfile)
	if got, want := sorted(all.ServiceNames()), sorted(append(core, observability...)); !slices.Equal(got, want) {
		t.Errorf("services with --profile %s = %v, want %v", observabilityProfile, got, want)
	}
	for _, name := range observability {
		if got := service(t, all, name).Profiles; !slices.Equal(got, []string{observabilityProfile}) {
			t.Errorf("%s: profiles %v, want [%s]", name, got, observabilityProfile)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestComposePostgres(t *testing.T) {
	p := loadCompose(t, nil)
	pg := service(t, p, "postgres")

	if pg.Image != "postgres:15" {
		t.Errorf("postgres image %q, want the official postgres:15", pg.Image)
	}
	if !slices.Contains(pg.Command, "listen_addresses=*") {
		t.Errorf("postgres command %v does not listen on all interfaces (-c listen_addresses=*)", pg.Command)
	}
	if pg.HealthCheck == nil || pg.HealthCheck.Disable || len(pg.HealthCheck.Test) < 2 ||
		pg.HealthCheck.Test[0] != "CMD" || pg.HealthCheck.Test[1] != "pg_isready" {
		t.Fatalf("postgres healthcheck %+v, want [CMD pg_isready ...]", pg.HealthCheck)
	}
	// pg_isready must ask over TCP: the image's initdb phase serves the Unix
	// socket only, and a socket check would pass before the real server runs.
	if host, _ := flagValue(pg.HealthCheck.Test[2:], "host"); host != "127.0.0.1" {
		t.Errorf("pg_isready --host=%q, want 127.0.0.1 (TCP)", host)
	}
	if user, _ := flagValue(pg.HealthCheck.Test[2:], "username"); user != env(pg, "POSTGRES_USER") {
		t.Errorf("pg_isready --username=%q, want POSTGRES_USER %q", user, env(pg, "POSTGRES_USER"))
	}

	pgSecret := secretPath(t, p, pg, "POSTGRES_PASSWORD_FILE")

	// memory uses the same secret, user and database, over the network.
	mem := service(t, p, "memory")
	if got := secretPath(t, p, mem, "POSTGRES_PASSWORD_FILE"); got != pgSecret {
		t.Errorf("memory reads password secret %q, postgres is initialised from %q", got, pgSecret)
	}
	for _, key := range []string{"POSTGRES_USER", "POSTGRES_DB"} {
		if env(mem, key) != env(pg, key) {
			t.Errorf("%s: memory %q, postgres %q", key, env(mem, key), env(pg, key))
		}
	}
	if got := env(mem, "POSTGRES_HOST"); got != "postgres" {
		t.Errorf("memory POSTGRES_HOST=%q, want the postgres service", got)
	}
	if got := env(mem, "POSTGRES_PORT"); got != "5432" {
		t.Errorf("memory POSTGRES_PORT=%q, want 5432", got)
	}
	if got := env(mem, "MIGRATE_ON_START"); got != "true" {
		t.Errorf("memory MIGRATE_ON_START=%q, want true", got)
	}
}

// No password in a plain variable anywhere (the binaries refuse one); every
// *_FILE variable names a mounted file secret; secret files are git-ignored.
func TestComposeSecrets(t *testing.T) {
	p := loadCompose(t, nil, observabilityProfile)
	plain := regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN)$`)
	for _, s := range p.Services {
		for key, v := range s.Environment {
			if plain.MatchString(key) {
				t.Errorf("%s: %s set as a plain variable", s.Name, key)
			}
			if v != nil && strings.Contains(*v, "://") && strings.Contains(*v, "@") {
				t.Errorf("%s: %s=%q carries credentials in a URL", s.Name, key, *v)
			}
			if strings.HasSuffix(key, "_FILE") {
				secretPath(t, p, s, key)
			}
		}
	}
	secretsDir := rootPath(t, "deploy/secrets")
	for name, s := range p.Secrets {
		if filepath.Dir(s.File) != secretsDir {
			t.Errorf("secret %s: file %s is outside %s (the git-ignored directory gen-secrets.sh fills)", name, s.File, secretsDir)
		}
	}
	if _, ok := p.Secrets["grafana_admin_password"]; !ok {
		t.Error("no grafana_admin_password secret: Grafana would keep its default admin password")
	}
	if got := env(service(t, p, "grafana"), "GF_SECURITY_ADMIN_PASSWORD__FILE"); got == "" {
		t.Error("grafana: admin password not read from a file (GF_SECURITY_ADMIN_PASSWORD__FILE)")
	}
}

// Each service starts only when the previous one is healthy, and each one it
// waits for has a health check (else service_healthy would wait forever).
func TestComposeHealthGating(t *testing.T) {
	p := loadCompose(t, nil, observabilityProfile)
	for _, tc := range []struct{ service, dependsOn string }{
		{"memory", "postgres"},
		{"orchestrator", "memory"},
	} {
		dep, ok := service(t, p, tc.service).DependsOn[tc.dependsOn]
		if !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: depends_on %s = %+v (present %v), want condition %s",
				tc.service, tc.dependsOn, dep, ok, types.ServiceConditionHealthy)
		}
	}
	for _, s := range p.Services {
		for name, dep := range s.DependsOn {
			if dep.Condition != types.ServiceConditionHealthy {
				continue
			}
			hc := service(t, p, name).HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", s.Name, name, name)
			}
		}
	}
}

func TestComposeBinaries(t *testing.T) {
	p := loadCompose(t, nil)
	serviceNames := p.ServiceNames()
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			s := service(t, p, b.name)
			if s.Build == nil || s.Build.Target != b.name || s.Build.Context != rootPath(t, "") {
				t.Errorf("build %+v, want context = repository root and target %q", s.Build, b.name)
			}
			if got := portOf(t, env(s, "GRPC_ADDR")); got != b.grpcPort {
				t.Errorf("GRPC_ADDR port %d, want %d", got, b.grpcPort)
			}
			if got := portOf(t, env(s, "HTTP_ADDR")); got != b.httpPort {
				t.Errorf("HTTP_ADDR port %d, want %d", got, b.httpPort)
			}
			for _, port := range []int{b.grpcPort, b.httpPort} {
				if !slices.Contains(s.Expose, strconv.Itoa(port)) {
					t.Errorf("expose %v lacks %d", s.Expose, port)
				}
			}

			// The binary is its own health client, asking the service that
			// gates traffic, on its own gRPC port, within the check's timeout.
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 3 || hc.Test[0] != "CMD" ||
				hc.Test[1] != "/"+b.name || hc.Test[2] != "health" {
				t.Fatalf("healthcheck %+v, want [CMD /%s health ...]", hc, b.name)
			}
			args := hc.Test[3:]
			if got, _ := flagValue(args, "service"); got != b.readyService {
				t.Errorf("health --service=%q, want %q", got, b.readyService)
			}
			if addr, ok := flagValue(args, "addr"); ok && portOf(t, addr) != b.grpcPort {
				t.Errorf("health --addr=%q, want port %d", addr, b.grpcPort)
			}
			clientTimeout := durationOr(t, "--timeout", "", 2*time.Second)
			if v, ok := flagValue(args, "timeout"); ok {
				clientTimeout = durationOr(t, "--timeout", v, 0)
			}
			if hc.Timeout == nil || time.Duration(*hc.Timeout) <= clientTimeout {
				t.Errorf("healthcheck timeout %v must exceed the health command's own %v", hc.Timeout, clientTimeout)
			}

			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("read_only=%v cap_drop=%v, want a read-only root and no capabilities", s.ReadOnly, s.CapDrop)
			}
			drain := durationOr(t, "SHUTDOWN_DELAY", env(s, "SHUTDOWN_DELAY"), defaultShutdownDelay) +
				durationOr(t, "DRAIN_TIMEOUT", env(s, "DRAIN_TIMEOUT"), defaultDrainTimeout)
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain {
				t.Errorf("stop_grace_period %v must exceed shutdown delay + drain timeout %v", s.StopGracePeriod, drain)
			}
			for _, port := range s.Ports {
				if b.name != "orchestrator" {
					t.Errorf("publishes %+v; only the orchestrator is the front door", port)
				}
			}
		})
	}

	orch := service(t, p, "orchestrator")
	host, _, _ := strings.Cut(env(orch, "MEMORY_ADDR"), ":")
	if !slices.Contains(serviceNames, host) || portOf(t, env(orch, "MEMORY_ADDR")) != binaries()[0].grpcPort {
		t.Errorf("orchestrator MEMORY_ADDR=%q, want the memory service's gRPC port", env(orch, "MEMORY_ADDR"))
	}
}

func TestComposePorts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    []string
		hostIP string
	}{
		{"loopback by default", nil, "127.0.0.1"},
		{"all interfaces on request", []string{"BRAIN_PUBLISH_ADDR=0.0.0.0"}, "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.env, observabilityProfile)
			orch := service(t, p, "orchestrator")
			for _, port := range []int{9090, 8080} {
				if !slices.ContainsFunc(orch.Ports, func(c types.ServicePortConfig) bool {
					return c.Target == uint32(port) && c.Published == strconv.Itoa(port) && c.HostIP == tc.hostIP
				}) {
					t.Errorf("orchestrator does not publish %s:%d:%d (ports %+v)", tc.hostIP, port, port, orch.Ports)
				}
			}
			// Two services on one host port would make `up` fail half-way.
			owner := map[string]string{}
			for _, s := range p.Services {
				for _, c := range s.Ports {
					if prev, dup := owner[c.Published]; dup {
						t.Errorf("host port %s published by %s and %s", c.Published, prev, s.Name)
					}
					owner[c.Published] = s.Name
				}
			}
		})
	}
}
