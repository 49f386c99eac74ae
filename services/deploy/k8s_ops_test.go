package deploy

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The binaries' MAX_CONNECTION_AGE and MAX_CALL_DURATION defaults.
const (
	defaultMaxConnectionAge = 5 * time.Minute
	defaultMaxCallDuration  = time.Minute
)

// TestK8sMemoryStartsWithoutPostgres: start-up never waits for PostgreSQL,
// in Kubernetes too. An init container that needs the database (a
// `memory migrate`) keeps every new pod from starting while it is down;
// memory migrates in the background instead.
func TestK8sMemoryStartsWithoutPostgres(t *testing.T) {
	m := loadManifests(t)
	spec := m.deployment(t, binaries()[0]).Spec.Template.Spec
	for _, ic := range spec.InitContainers {
		usesDB := slices.Contains(ic.Args, "migrate") ||
			slices.ContainsFunc(ic.EnvFrom, func(e corev1.EnvFromSource) bool {
				return e.ConfigMapRef != nil && e.ConfigMapRef.Name == postgresSecretName
			}) ||
			slices.ContainsFunc(ic.Env, func(e corev1.EnvVar) bool {
				return strings.HasPrefix(e.Name, "POSTGRES_") || strings.HasPrefix(e.Name, "DATABASE_URL")
			})
		if usesDB {
			t.Errorf("init container %s needs PostgreSQL: memory pods cannot start while it is down", ic.Name)
		}
	}
	c := container(t, spec, "memory")
	e, _ := envVar(c, "MIGRATE_ON_START")
	if on, err := strconv.ParseBool(e.Value); err != nil || !on {
		t.Errorf("memory MIGRATE_ON_START=%q; want true, so the schema is applied without an init container", e.Value)
	}
}

// TestK8sMemoryConnectionAge: the ClusterIP Service balances connections,
// not calls, and each orchestrator keeps one; memory must make old
// connections reconnect so pods added by scaling get traffic.
func TestK8sMemoryConnectionAge(t *testing.T) {
	m := loadManifests(t)
	svc, ok := m.services["brain-memory"]
	if !ok {
		t.Fatal("no Service brain-memory")
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Skip("headless Service: balancing is the client's")
	}
	d := m.deployment(t, binaries()[0])
	c := container(t, d.Spec.Template.Spec, "memory")
	ageVar, _ := envVar(c, "MAX_CONNECTION_AGE")
	age := durationOr(t, "MAX_CONNECTION_AGE", ageVar.Value, defaultMaxConnectionAge)
	if age <= 0 || age > defaultMaxConnectionAge {
		t.Errorf("memory MAX_CONNECTION_AGE=%s; want a positive age of at most %s", age, defaultMaxConnectionAge)
	}
	// An old connection's calls get MAX_CALL_DURATION to finish after
	// GOAWAY: at least as long as they get in a drain.
	graceVar, _ := envVar(c, "MAX_CALL_DURATION")
	drainVar, _ := envVar(c, "DRAIN_TIMEOUT")
	grace := durationOr(t, "MAX_CALL_DURATION", graceVar.Value, defaultMaxCallDuration)
	if drain := durationOr(t, "DRAIN_TIMEOUT", drainVar.Value, defaultDrainTimeout); grace < drain {
		t.Errorf("memory MAX_CALL_DURATION=%s is shorter than DRAIN_TIMEOUT=%s", grace, drain)
	}
}

// TestK8sPostgresTLS: the external database is reached over TLS that cannot
// silently fall back to plaintext, with the server's certificate verified
// against a CA the pod actually has.
func TestK8sPostgresTLS(t *testing.T) {
	m := loadManifests(t)
	cm, ok := m.configMaps[postgresSecretName]
	if !ok {
		t.Fatalf("no ConfigMap %s", postgresSecretName)
	}
	if mode := cm.Data["POSTGRES_SSLMODE"]; mode != "verify-full" {
		t.Fatalf("POSTGRES_SSLMODE=%q; want verify-full (prefer and allow fall back to plaintext, require trusts any certificate)", mode)
	}
	root := cm.Data["POSTGRES_SSLROOTCERT"]
	if root == "" {
		t.Fatal("POSTGRES_SSLROOTCERT unset: verify-full needs a CA file (or \"system\")")
	}
	if root == "system" {
		return
	}
	spec := m.deployment(t, binaries()[0]).Spec.Template.Spec
	c := container(t, spec, "memory")
	found := false
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(root, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok || !vm.ReadOnly {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			if slices.ContainsFunc(v.ConfigMap.Items, func(k corev1.KeyToPath) bool { return k.Path == rel }) ||
				(len(v.ConfigMap.Items) == 0 && rel != "") {
				found = true
				// Created out of band, like the password Secret: say how.
				readme := string(readRootFile(t, "deploy/README.md"))
				if !strings.Contains(readme, "create configmap "+v.ConfigMap.Name) {
					t.Errorf("deploy/README.md does not say how to create ConfigMap %s", v.ConfigMap.Name)
				}
			}
		}
	}
	if !found {
		t.Errorf("POSTGRES_SSLROOTCERT=%s is not a file of a ConfigMap mounted read-only in the memory container", root)
	}
}

// TestDeployReadmeCommandPaths follows the shell commands in
// deploy/README.md's code blocks from the repository root, keeping track of
// `cd` (a line wrapped in parentheses is a subshell: its `cd` does not last),
// and checks that every directory and file they name exists where the
// command runs.
func TestDeployReadmeCommandPaths(t *testing.T) {
	root := rootPath(t, ".")
	blocks := codeBlocks(readRootFile(t, "deploy/README.md"))
	if len(blocks) == 0 {
		t.Fatal("no code blocks in deploy/README.md")
	}
	for _, block := range blocks {
		cwd := root
		for _, line := range block {
			sub := strings.HasPrefix(line, "(") && strings.HasSuffix(line, ")")
			dir := cwd
			for _, part := range strings.Split(strings.ReplaceAll(strings.Trim(line, "()"), "&&", ";"), ";") {
				if words := strings.Fields(part); len(words) > 0 {
					dir = checkCommand(t, line, words, dir, root)
				}
			}
			if !sub {
				cwd = dir
			}
		}
	}
}

// checkCommand checks the paths one command names, run in dir, and returns
// the directory the next command runs in.
func checkCommand(t *testing.T, line string, words []string, dir, root string) string {
	t.Helper()
	rel := func(p string) string {
		r, err := filepath.Rel(root, p)
		if err != nil {
			return p
		}
		return r
	}
	exists := func(what, p string) bool {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("deploy/README.md: %q: %s %s does not exist in %s", line, what, p, rel(dir))
			return false
		}
		return true
	}
	placeholder := func(p string) bool { return strings.ContainsAny(p, "<>$") }
	switch {
	case words[0] == "cd" && len(words) == 2:
		if exists("directory", words[1]) {
			return filepath.Join(dir, words[1])
		}
		return dir
	case words[0] == "kustomize" && len(words) > 1 && words[1] == "edit":
		exists("kustomization", "kustomization.yaml")
	case words[0] == "docker" && len(words) > 1 && words[1] == "compose":
		exists("compose file", "compose.yaml")
	case strings.HasPrefix(words[0], "deploy/") || strings.HasPrefix(words[0], "./"):
		exists("program", words[0])
	}
	for i, w := range words[:len(words)-1] {
		if (w == "-k" || w == "-f") && !placeholder(words[i+1]) {
			exists("path", words[i+1])
		}
	}
	return dir
}

// codeBlocks returns the indented code blocks of a Markdown file (four or
// more spaces, also inside list items), each as its trimmed lines.
func codeBlocks(md []byte) [][]string {
	var blocks [][]string
	var cur []string
	prevBlank := true
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indented := strings.HasPrefix(line, "    ") && trimmed != ""
		switch {
		case trimmed == "":
			prevBlank = true
			continue
		case indented && (prevBlank || cur != nil):
			cur = append(cur, trimmed)
		default:
			if cur != nil {
				blocks = append(blocks, cur)
				cur = nil
			}
		}
		prevBlank = false
	}
	if cur != nil {
		blocks = append(blocks, cur)
	}
	return blocks
}

func TestCodeBlocks(t *testing.T) {
	md := "Intro\n\n    cd a && b\n    c\n\n    d\nText\n   not code\n\n1. Step:\n\n       (cd x && y)\n"
	got := codeBlocks([]byte(md))
	want := [][]string{{"cd a && b", "c", "d"}, {"(cd x && y)"}}
	if len(got) != len(want) {
		t.Fatalf("codeBlocks = %q, want %q", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("codeBlocks = %q, want %q", got, want)
		}
	}
}
