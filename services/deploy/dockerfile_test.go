package deploy

import (
	"encoding/json"
	"go/version"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	stage string // the `AS` name of the stage it belongs to
	cmd   string // upper-case keyword
	args  string
}

// parseDockerfile is deliberately small: it knows comments, line
// continuations and stages, which is all the checks below need.
func parseDockerfile(t *testing.T, src string) []instruction {
	t.Helper()
	var (
		out     []instruction
		stage   string
		pending string
	)
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && pending == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			pending += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		full := strings.TrimSpace(pending + trimmed)
		pending = ""
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		args = strings.TrimSpace(args)
		if cmd == "FROM" {
			stage = ""
			if f := strings.Fields(args); len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				stage = f[len(f)-1]
			}
		}
		out = append(out, instruction{stage: stage, cmd: cmd, args: args})
	}
	if pending != "" {
		t.Fatalf("Dockerfile ends inside a continued line: %q", pending)
	}
	return out
}

func stageInstructions(all []instruction, stage, cmd string) []instruction {
	var out []instruction
	for _, in := range all {
		if in.stage == stage && in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// goWorkUses lists the module directories of go.work's use directives.
func goWorkUses(t *testing.T, src string) []string {
	t.Helper()
	var uses []string
	inBlock := false
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "use (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "" && !strings.HasPrefix(line, "//"):
			uses = append(uses, line)
		case strings.HasPrefix(line, "use "):
			uses = append(uses, strings.TrimSpace(strings.TrimPrefix(line, "use ")))
		}
	}
	if len(uses) == 0 {
		t.Fatal("go.work: no use directives found")
	}
	return uses
}

func TestDockerfileBuildStage(t *testing.T) {
	ins := parseDockerfile(t, string(readRootFile(t, "Dockerfile")))

	// The builder image must be able to build the workspace with
	// GOTOOLCHAIN=local: not older than go.work's go line.
	goWork := string(readRootFile(t, "go.work"))
	m := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(goWork)
	if m == nil {
		t.Fatal("go.work has no go line")
	}
	var goVersion string
	for _, in := range ins {
		if in.cmd == "ARG" && strings.HasPrefix(in.args, "GO_VERSION=") {
			goVersion = strings.TrimPrefix(in.args, "GO_VERSION=")
		}
	}
	if goVersion == "" {
		t.Fatal("Dockerfile: no ARG GO_VERSION=<version> default")
	}
	if version.Compare("go"+goVersion, "go"+m[1]) < 0 {
		t.Errorf("Dockerfile GO_VERSION %s is older than go.work's go %s", goVersion, m[1])
	}

	from := stageInstructions(ins, "build", "FROM")
	if len(from) != 1 || !strings.Contains(from[0].args, "golang:${GO_VERSION}") {
		t.Fatalf("build stage: want FROM golang:${GO_VERSION}..., got %+v", from)
	}

	var env, run, copied []string
	for _, in := range stageInstructions(ins, "build", "ENV") {
		env = append(env, strings.Fields(in.args)...)
	}
	for _, in := range stageInstructions(ins, "build", "RUN") {
		run = append(run, in.args)
	}
	for _, in := range stageInstructions(ins, "build", "COPY") {
		f := strings.Fields(in.args)
		copied = append(copied, f[:len(f)-1]...)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("build stage ENV %v lacks CGO_ENABLED=0 (static binaries)", env)
	}
	build := strings.Join(run, "\n")
	for _, want := range []string{"go build", "-trimpath", `-ldflags "-s -w"`} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage RUN lacks %q:\n%s", want, build)
		}
	}
	for _, b := range binaries() {
		if !strings.Contains(build, "./services/"+b.name+"/cmd/"+b.name) {
			t.Errorf("build stage does not build ./services/%s/cmd/%s", b.name, b.name)
		}
	}

	// Everything the workspace needs is in the image: go.work and every
	// module it uses, under a copied directory.
	if !slices.Contains(copied, "go.work*") && !slices.Contains(copied, "go.work") {
		t.Errorf("build stage does not COPY go.work (copies %v)", copied)
	}
	for _, use := range goWorkUses(t, goWork) {
		dir := strings.TrimPrefix(use, "./")
		if !slices.ContainsFunc(copied, func(c string) bool {
			c = strings.TrimSuffix(c, "/")
			return dir == c || strings.HasPrefix(dir, c+"/")
		}) {
			t.Errorf("go.work uses %s but the build stage copies only %v", use, copied)
		}
	}
}

func TestDockerfileRuntimeStages(t *testing.T) {
	ins := parseDockerfile(t, string(readRootFile(t, "Dockerfile")))
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			one := func(cmd string) string {
				t.Helper()
				got := stageInstructions(ins, b.name, cmd)
				if len(got) != 1 {
					t.Fatalf("stage %s: want one %s, got %d", b.name, cmd, len(got))
				}
				return got[0].args
			}
			base := one("FROM")
			if !strings.Contains(base, "distroless/static") {
				t.Errorf("stage %s: base %q is not distroless/static", b.name, base)
			}
			user := one("USER")
			uid, _, _ := strings.Cut(user, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("stage %s: USER %q must be a numeric non-root uid (Kubernetes runAsNonRoot verifies it)", b.name, user)
			}
			bin := "/" + b.name
			if got := one("COPY"); !strings.HasSuffix(got, " "+bin) || !strings.HasPrefix(got, "--from=build ") {
				t.Errorf("stage %s: COPY %q does not install the built binary at %s", b.name, got, bin)
			}
			if got := one("ENTRYPOINT"); got != `["`+bin+`"]` {
				t.Errorf("stage %s: ENTRYPOINT %s, want [%q]", b.name, got, bin)
			}
			ports := strings.Fields(one("EXPOSE"))
			for _, p := range []int{b.grpcPort, b.httpPort} {
				if !slices.Contains(ports, strconv.Itoa(p)) {
					t.Errorf("stage %s: EXPOSE %v lacks %d", b.name, ports, p)
				}
			}
			// HEALTHCHECK [options] CMD ["/bin", "health", ...] in exec form:
			// distroless has no shell for the shell form.
			hc := one("HEALTHCHECK")
			_, execForm, ok := strings.Cut(hc, "CMD ")
			if !ok {
				t.Fatalf("stage %s: HEALTHCHECK %q has no CMD", b.name, hc)
			}
			var argv []string
			if err := json.Unmarshal([]byte(execForm), &argv); err != nil {
				t.Fatalf("stage %s: HEALTHCHECK CMD %s is not exec form: %v", b.name, execForm, err)
			}
			if len(argv) < 2 || argv[0] != bin || argv[1] != "health" {
				t.Errorf("stage %s: HEALTHCHECK runs %v, want [%s health ...]", b.name, argv, bin)
			}
		})
	}
}

func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(string(readRootFile(t, ".dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/"))
		}
	}
	// Local secrets and VCS data never enter the build context...
	for _, want := range []string{".git", "deploy"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore %v does not exclude %s", patterns, want)
		}
	}
	// ...and what the build copies is never excluded.
	for _, need := range []string{"go.work", "gen", "services", "*", "**"} {
		if slices.Contains(patterns, need) {
			t.Errorf(".dockerignore excludes %q, which the build needs", need)
		}
	}
}
