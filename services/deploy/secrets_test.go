package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func runGenSecrets(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", rootPath(t, "deploy/gen-secrets.sh"))
	cmd.Env = append(os.Environ(), "SECRETS_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
	}
}

// gen-secrets.sh creates every file secret compose.yaml needs, readable by the
// containers' non-root users, random, and never replaced once created.
func TestGenSecrets(t *testing.T) {
	dir := t.TempDir()
	runGenSecrets(t, dir)

	p := loadCompose(t, nil, observabilityProfile)
	seen := map[string]string{}
	for name, s := range p.Secrets {
		file := filepath.Join(dir, filepath.Base(s.File))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("secret %s: gen-secrets.sh did not create it: %v", name, err)
		}
		if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).Match(b) {
			t.Errorf("secret %s: %q is not 32 alphanumerics without a newline", name, b)
		}
		if other, dup := seen[string(b)]; dup {
			t.Errorf("secrets %s and %s are equal", name, other)
		}
		seen[string(b)] = name
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o004 == 0 {
			t.Errorf("secret %s: mode %v, compose bind-mounts it as is and the non-root containers must read it", name, fi.Mode().Perm())
		}
	}

	// A second run keeps what exists: the database was initialised with it.
	before := map[string]string{}
	for content, name := range seen {
		before[name] = content
	}
	runGenSecrets(t, dir)
	for name, s := range p.Secrets {
		b, _ := os.ReadFile(filepath.Join(dir, filepath.Base(s.File)))
		if string(b) != before[name] {
			t.Errorf("secret %s changed on a second run", name)
		}
	}
}

// The real secrets directory is ignored by git, whatever lands in it.
func TestSecretsDirIgnored(t *testing.T) {
	lines := strings.Split(string(readRootFile(t, "deploy/secrets/.gitignore")), "\n")
	ignoresAll, keepsOnlyItself := false, true
	for _, l := range lines {
		switch l = strings.TrimSpace(l); {
		case l == "*":
			ignoresAll = true
		case strings.HasPrefix(l, "!") && l != "!.gitignore":
			keepsOnlyItself = false
		}
	}
	if !ignoresAll || !keepsOnlyItself {
		t.Errorf("deploy/secrets/.gitignore must ignore everything but itself:\n%s", strings.Join(lines, "\n"))
	}
}
