package deploy

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir             = "deploy/k8s"
	postgresSecretName = "brain-postgres"
	maxMemoryLimit     = "256Mi"
)

// manifests is every object deploy/k8s/kustomization.yaml applies, decoded
// into the Kubernetes API types.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// loadManifests decodes each file strictly: an unknown or misspelt field
// (say, `readinesProbe`) fails here rather than being dropped by the API server.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	var k kustomization
	if err := yaml.UnmarshalStrict(readRootFile(t, path.Join(k8sDir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("kustomization.yaml: kind %q with %d resources", k.Kind, len(k.Resources))
	}

	// Every manifest in the directory is applied; none is forgotten.
	entries, err := os.ReadDir(rootPath(t, k8sDir))
	if err != nil {
		t.Fatalf("read %s: %v", k8sDir, err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".yaml") && n != "kustomization.yaml" && !slices.Contains(k.Resources, n) {
			t.Errorf("%s/%s is not listed in kustomization.yaml", k8sDir, n)
		}
	}

	m := manifests{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
	}
	for _, file := range k.Resources {
		raw := readRootFile(t, path.Join(k8sDir, file))
		if strings.Contains(string(raw), "\n---") {
			t.Fatalf("%s: one object per file, please", file)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(raw, &tm); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var (
			obj  any
			name func() string
		)
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			obj, name = o, func() string { m.deployments[o.Name] = o; return o.Name }
		case "v1/Service":
			o := &corev1.Service{}
			obj, name = o, func() string { m.services[o.Name] = o; return o.Name }
		case "policy/v1/PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			obj, name = o, func() string { m.pdbs[o.Name] = o; return o.Name }
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			obj, name = o, func() string { m.configMaps[o.Name] = o; return o.Name }
		case "v1/Secret":
			o := &corev1.Secret{}
			obj, name = o, func() string { m.secrets[o.Name] = o; return o.Name }
		default:
			t.Fatalf("%s: unexpected kind %s", file, gvk)
		}
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if n := name(); n == "" {
			t.Fatalf("%s: object has no name", file)
		}
	}
	return m
}

// deref formats an optional field for a failure message.
func deref[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func (m manifests) deployment(t *testing.T, b binary) *appsv1.Deployment {
	t.Helper()
	d, ok := m.deployments["brain-"+b.name]
	if !ok {
		t.Fatalf("no Deployment brain-%s", b.name)
	}
	return d
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("no container %q", name)
	}
	return spec.Containers[i]
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return c.Env[i], true
}

func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(set))
}

func portNamed(c corev1.Container, name string) (corev1.ContainerPort, bool) {
	i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
	if i < 0 {
		return corev1.ContainerPort{}, false
	}
	return c.Ports[i], true
}

func TestK8sDeployments(t *testing.T) {
	m := loadManifests(t)
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			d := m.deployment(t, b)
			spec := d.Spec.Template.Spec
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Fatalf("replicas %s, want at least 2", deref(d.Spec.Replicas))
			}
			if !selects(t, d.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("selector %v does not select the pod template labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
			c := container(t, spec, b.name)
			if !strings.HasPrefix(c.Image, "brain/"+b.name+":") {
				t.Errorf("image %q, want brain/%s:<tag>", c.Image, b.name)
			}
			for _, want := range []corev1.ContainerPort{
				{Name: "grpc", ContainerPort: int32(b.grpcPort), Protocol: corev1.ProtocolTCP},
				{Name: "http", ContainerPort: int32(b.httpPort), Protocol: corev1.ProtocolTCP},
			} {
				if got, ok := portNamed(c, want.Name); !ok || got != want {
					t.Errorf("port %s = %+v, want %+v", want.Name, got, want)
				}
				if errs := validation.IsValidPortName(want.Name); len(errs) > 0 {
					t.Errorf("port name %q: %v", want.Name, errs)
				}
			}
			for name, port := range map[string]int{"GRPC_ADDR": b.grpcPort, "HTTP_ADDR": b.httpPort} {
				if e, ok := envVar(c, name); ok && portOf(t, e.Value) != port {
					t.Errorf("%s=%q, but the container port is %d", name, e.Value, port)
				}
			}

			checkProbes(t, b, c)
			checkShutdown(t, d, c)
			checkResources(t, c)
			checkNonRoot(t, spec)
		})
	}
}

func checkProbes(t *testing.T, b binary, c corev1.Container) {
	t.Helper()
	grpcProbe := func(kind string, p *corev1.Probe) (service string) {
		t.Helper()
		if p == nil || p.GRPC == nil {
			t.Fatalf("%s probe %+v, want a gRPC health probe", kind, p)
		}
		if p.GRPC.Port != int32(b.grpcPort) {
			t.Errorf("%s probe port %d, want the gRPC port %d", kind, p.GRPC.Port, b.grpcPort)
		}
		if p.GRPC.Service != nil {
			return *p.GRPC.Service
		}
		return ""
	}
	if got := grpcProbe("readiness", c.ReadinessProbe); got != b.readyService {
		t.Errorf("readiness probe asks for %q, want %q", got, b.readyService)
	}
	// Liveness asks only "is the process serving at all" (service ""):
	// a dependency outage must never get pods killed.
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil {
		if hg := c.LivenessProbe.HTTPGet; hg.Path != "/healthz" || hg.Port != intstr.FromString("http") {
			t.Errorf("liveness httpGet %+v, want /healthz on the http port", hg)
		}
	} else if got := grpcProbe("liveness", c.LivenessProbe); got != "" {
		t.Errorf("liveness probe asks for %q, want the overall status \"\"", got)
	}
	if got := grpcProbe("startup", c.StartupProbe); got != "" && got != b.readyService {
		t.Errorf("startup probe asks for %q", got)
	}
	// Liveness must not kill a pod that is merely slow to start.
	if sp := c.StartupProbe; sp.PeriodSeconds*sp.FailureThreshold < 10 {
		t.Errorf("startup probe allows only %ds to start", sp.PeriodSeconds*sp.FailureThreshold)
	}
}

// After SIGTERM the binary reports NOT_SERVING for SHUTDOWN_DELAY before its
// listeners close; readiness must notice within that time, and the kubelet
// must not SIGKILL before the drain is over.
func checkShutdown(t *testing.T, d *appsv1.Deployment, c corev1.Container) {
	t.Helper()
	value := func(name string) string {
		e, _ := envVar(c, name)
		return e.Value
	}
	delay := durationOr(t, "SHUTDOWN_DELAY", value("SHUTDOWN_DELAY"), defaultShutdownDelay)
	drain := durationOr(t, "DRAIN_TIMEOUT", value("DRAIN_TIMEOUT"), defaultDrainTimeout)
	if delay < 2*time.Second {
		t.Errorf("SHUTDOWN_DELAY %v: endpoints are removed asynchronously; want a few seconds", delay)
	}
	rp := c.ReadinessProbe
	if notice := time.Duration(rp.PeriodSeconds*rp.FailureThreshold) * time.Second; notice >= delay {
		t.Errorf("readiness needs %v to notice NOT_SERVING, but listeners close after SHUTDOWN_DELAY %v", notice, delay)
	}
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= delay+drain {
		t.Errorf("terminationGracePeriodSeconds %s must exceed SHUTDOWN_DELAY + DRAIN_TIMEOUT = %v", deref(grace), delay+drain)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		t.Errorf("requests %v: want cpu and memory", req)
	}
	memLimit := lim.Memory()
	if memLimit.IsZero() || memLimit.Cmp(resource.MustParse(maxMemoryLimit)) > 0 || memLimit.Cmp(*req.Memory()) < 0 {
		t.Errorf("memory limit %v: want between the request %v and %s", memLimit, req.Memory(), maxMemoryLimit)
	}
	// A Go soft limit at or above the container limit would never act
	// before the OOM killer.
	if e, ok := envVar(c, "GOMEMLIMIT"); ok {
		soft, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
		if err != nil {
			t.Fatalf("GOMEMLIMIT=%q: %v", e.Value, err)
		}
		if soft.Cmp(*memLimit) >= 0 {
			t.Errorf("GOMEMLIMIT %s is not below the memory limit %v", e.Value, memLimit)
		}
	}
}

func checkNonRoot(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", psc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the services never call the Kubernetes API: automountServiceAccountToken should be false")
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s securityContext %+v: want read-only root, no privilege escalation, all capabilities dropped", c.Name, sc)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: memory request and limit must be set", c.Name)
		}
	}
}

// The password reaches memory only as a file from the Secret; the Secret is
// created out of band and never committed.
func TestK8sPostgresPassword(t *testing.T) {
	m := loadManifests(t)
	for name, s := range m.secrets {
		if len(s.Data) > 0 || len(s.StringData) > 0 {
			t.Errorf("Secret %s carries data in the repository; create it with kubectl instead", name)
		}
	}

	spec := m.deployment(t, binaries()[0]).Spec.Template.Spec
	usesDB := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range usesDB {
		for _, e := range c.Env {
			if e.Name == "POSTGRES_PASSWORD" || e.Name == "DATABASE_URL" ||
				(e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil) {
				t.Errorf("container %s: %s exposes a secret through the environment", c.Name, e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				t.Errorf("container %s: envFrom Secret %s exposes it through the environment", c.Name, ef.SecretRef.Name)
			}
			if ef.ConfigMapRef == nil {
				continue
			}
			cm, ok := m.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				t.Fatalf("container %s: envFrom ConfigMap %s is not in the manifests", c.Name, ef.ConfigMapRef.Name)
			}
			for key := range cm.Data {
				if strings.Contains(strings.ToUpper(key), "PASSWORD") && !strings.HasSuffix(key, "_FILE") {
					t.Errorf("ConfigMap %s holds %s", cm.Name, key)
				}
			}
			if cm.Data["POSTGRES_HOST"] == "" {
				t.Errorf("ConfigMap %s: no POSTGRES_HOST", cm.Name)
			}
		}

		pw, ok := envVar(c, "POSTGRES_PASSWORD_FILE")
		if !ok {
			t.Errorf("container %s: no POSTGRES_PASSWORD_FILE", c.Name)
			continue
		}
		if !mountsSecretFile(spec, c, pw.Value, postgresSecretName, "password") {
			t.Errorf("container %s: POSTGRES_PASSWORD_FILE=%s is not key \"password\" of Secret %s mounted read-only",
				c.Name, pw.Value, postgresSecretName)
		}
	}

	// The orchestrator never sees the database password.
	orch := m.deployment(t, binaries()[1]).Spec.Template.Spec
	for _, v := range orch.Volumes {
		if v.Secret != nil {
			t.Errorf("orchestrator mounts Secret %s", v.Secret.SecretName)
		}
	}
}

// mountsSecretFile reports whether file, inside container c, is key of
// Secret secret, through a read-only volume mount.
func mountsSecretFile(spec corev1.PodSpec, c corev1.Container, file, secret, key string) bool {
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok || !vm.ReadOnly || vm.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil || v.Secret.SecretName != secret {
				continue
			}
			// Readable by the pod's group, by nobody else.
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				return false
			}
			if len(v.Secret.Items) == 0 {
				return rel == key
			}
			for _, it := range v.Secret.Items {
				if it.Key == key && it.Path == rel {
					return true
				}
			}
		}
	}
	return false
}

func TestK8sServices(t *testing.T) {
	m := loadManifests(t)
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			svc, ok := m.services["brain-"+b.name]
			if !ok {
				t.Fatalf("no Service brain-%s", b.name)
			}
			d := m.deployment(t, b)
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("Service selector %v does not select pods labelled %v", svc.Spec.Selector, d.Spec.Template.Labels)
			}
			for other, od := range m.deployments {
				if other != d.Name && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(od.Spec.Template.Labels)) {
					t.Errorf("Service selector %v also selects Deployment %s", svc.Spec.Selector, other)
				}
			}
			c := container(t, d.Spec.Template.Spec, b.name)
			for _, want := range []struct {
				name  string
				port  int
				proto string
			}{{"grpc", b.grpcPort, "grpc"}, {"http", b.httpPort, "http"}} {
				i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == want.name })
				if i < 0 {
					t.Errorf("Service has no port %q", want.name)
					continue
				}
				sp := svc.Spec.Ports[i]
				target, ok := portNamed(c, sp.TargetPort.StrVal)
				if sp.TargetPort.Type == intstr.Int {
					target, ok = corev1.ContainerPort{ContainerPort: sp.TargetPort.IntVal}, slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == sp.TargetPort.IntVal })
				}
				if !ok || target.ContainerPort != int32(want.port) || sp.Port != int32(want.port) {
					t.Errorf("Service port %s = %d -> %s, want %d -> container port %d", sp.Name, sp.Port, sp.TargetPort.String(), want.port, want.port)
				}
				if sp.AppProtocol == nil || *sp.AppProtocol != want.proto {
					t.Errorf("Service port %s appProtocol %s, want %q", sp.Name, deref(sp.AppProtocol), want.proto)
				}
			}
		})
	}

	// The orchestrator dials memory through a headless Service's gRPC port
	// with the DNS resolver, so its client sees, and balances over, every
	// memory pod.
	orch := container(t, m.deployment(t, binaries()[1]).Spec.Template.Spec, "orchestrator")
	addr, _ := envVar(orch, "MEMORY_ADDR")
	target, dns := strings.CutPrefix(addr.Value, "dns:///")
	host, port, _ := strings.Cut(target, ":")
	svc, ok := m.services[host]
	if !ok {
		t.Fatalf("orchestrator MEMORY_ADDR=%q names no Service", addr.Value)
	}
	if !dns || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("orchestrator MEMORY_ADDR=%q: want dns:/// and a headless Service, so calls spread over every memory pod", addr.Value)
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return p.Name == "grpc" && strconv.Itoa(int(p.Port)) == port
	}) {
		t.Errorf("orchestrator MEMORY_ADDR=%q is not Service %s's grpc port", addr.Value, host)
	}
}

func TestK8sPodDisruptionBudgets(t *testing.T) {
	m := loadManifests(t)
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			pdb, ok := m.pdbs["brain-"+b.name]
			if !ok {
				t.Fatalf("no PodDisruptionBudget brain-%s", b.name)
			}
			d := m.deployment(t, b)
			if d.Spec.Replicas == nil {
				t.Fatalf("Deployment %s: replicas unset", d.Name)
			}
			if !selects(t, pdb.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("PDB selector %v does not select pods labelled %v", pdb.Spec.Selector, d.Spec.Template.Labels)
			}
			// minAvailable equal to replicas would block every node drain.
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.Type != intstr.Int ||
				pdb.Spec.MinAvailable.IntVal < 1 || pdb.Spec.MinAvailable.IntVal >= *d.Spec.Replicas {
				t.Errorf("minAvailable %v, want at least 1 and below replicas %d", pdb.Spec.MinAvailable, *d.Spec.Replicas)
			}
		})
	}
}
