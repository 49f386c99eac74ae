package deploy

import (
	"encoding/json"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The subset of Prometheus' configuration file this repository uses; strict
// decoding makes a misspelt key fail.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		ScrapeTimeout      string `json:"scrape_timeout"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	ScrapeConfigs []scrapeConfig `json:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string `json:"job_name"`
	MetricsPath   string `json:"metrics_path"`
	StaticConfigs []struct {
		Targets []string `json:"targets"`
	} `json:"static_configs"`
}

type grafanaDatasources struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string         `json:"name"`
		UID       string         `json:"uid"`
		Type      string         `json:"type"`
		Access    string         `json:"access"`
		URL       string         `json:"url"`
		IsDefault bool           `json:"isDefault"`
		Editable  bool           `json:"editable"`
		JSONData  map[string]any `json:"jsonData"`
	} `json:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `json:"apiVersion"`
	Providers  []struct {
		Name            string `json:"name"`
		Folder          string `json:"folder"`
		Type            string `json:"type"`
		DisableDeletion bool   `json:"disableDeletion"`
		AllowUIUpdates  bool   `json:"allowUiUpdates"`
		Options         struct {
			Path                      string `json:"path"`
			FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
		} `json:"options"`
	} `json:"providers"`
}

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// Prometheus scrapes each service's /metrics on the HTTP port compose
// exposes, under the job name the dashboard filters on.
func TestPrometheusScrapesBothServices(t *testing.T) {
	var cfg promConfig
	if err := yaml.UnmarshalStrict(readRootFile(t, "deploy/prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	p := loadCompose(t, nil, observabilityProfile)
	for _, b := range binaries() {
		i := slices.IndexFunc(cfg.ScrapeConfigs, func(j scrapeConfig) bool { return j.JobName == b.name })
		if i < 0 {
			t.Errorf("no scrape job %q", b.name)
			continue
		}
		job := cfg.ScrapeConfigs[i]
		if job.MetricsPath != "" && job.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q", b.name, job.MetricsPath)
		}
		want := b.name + ":" + strconv.Itoa(b.httpPort)
		if len(job.StaticConfigs) != 1 || !slices.Equal(job.StaticConfigs[0].Targets, []string{want}) {
			t.Errorf("job %s: targets %+v, want [%s]", b.name, job.StaticConfigs, want)
		}
		if s := service(t, p, b.name); !slices.Contains(s.Expose, strconv.Itoa(b.httpPort)) {
			t.Errorf("compose service %s does not expose the scraped port %d", b.name, b.httpPort)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t, nil, observabilityProfile)
	grafana := service(t, p, "grafana")
	mounts := map[string]string{} // container path -> host path
	for _, v := range grafana.Volumes {
		if v.Type == "bind" {
			mounts[v.Target] = v.Source
			if !v.ReadOnly {
				t.Errorf("grafana: bind mount %s is writable", v.Target)
			}
		}
	}
	if got := mounts["/etc/grafana/provisioning"]; got != rootPath(t, "deploy/grafana/provisioning") {
		t.Fatalf("grafana: /etc/grafana/provisioning comes from %q, want deploy/grafana/provisioning", got)
	}

	var ds grafanaDatasources
	if err := yaml.UnmarshalStrict(readRootFile(t, "deploy/grafana/provisioning/datasources/prometheus.yaml"), &ds); err != nil {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].UID == "" {
		t.Fatalf("datasources %+v, want one prometheus datasource with a fixed uid", ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatalf("datasource url: %v", err)
	}
	if _, ok := p.Services[u.Hostname()]; !ok || u.Port() != "9090" {
		t.Errorf("datasource url %s is not the prometheus service's port 9090", u)
	}

	var prov grafanaProviders
	if err := yaml.UnmarshalStrict(readRootFile(t, "deploy/grafana/provisioning/dashboards/brain.yaml"), &prov); err != nil {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one file provider", prov.Providers)
	}
	dir := prov.Providers[0].Options.Path
	if got := mounts[dir]; got != rootPath(t, "deploy/grafana/dashboards") {
		t.Errorf("provider reads %s, which grafana mounts from %q, want deploy/grafana/dashboards", dir, got)
	}
	home := env(grafana, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	if home != "" && path.Dir(home) != dir {
		t.Errorf("home dashboard %s is outside the provisioned %s", home, dir)
	}

	checkDashboard(t, ds.Datasources[0].UID)
}

func checkDashboard(t *testing.T, datasourceUID string) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRootFile(t, "deploy/grafana/dashboards/brain.json"), &d); err != nil {
		t.Fatalf("brain.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a fixed uid and a title, got %q %q", d.UID, d.Title)
	}

	var exprs []string
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != datasourceUID {
			t.Errorf("panel %q: datasource %+v, want the provisioned uid %q", p.Title, p.Datasource, datasourceUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if err := balanced(tg.Expr); err != "" {
				t.Errorf("panel %q: %s in %s", p.Title, err, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
		}
	}

	// What the dashboard is for: each of these has a panel.
	all := strings.Join(exprs, "\n")
	for _, want := range []struct{ what, re string }{
		{"RPC rate by method", `rate\(grpc_server_handled_total\b.*by \([^)]*grpc_method|by \([^)]*grpc_method[^)]*\) \(rate\(grpc_server_handled_total`},
		{"RPC latency by method", `histogram_quantile\(.*by \([^)]*\ble\b[^)]*grpc_method[^)]*\) \(rate\(grpc_server_handling_seconds_bucket`},
		{"recall by source", `by \(source\) \(rate\(brain_memory_recall_total`},
		{"breaker state", `brain_memory_breaker_open`},
		{"LAB durations", `histogram_quantile\(.*by \(le, lab\) \(rate\(brain_orchestrator_lab_duration_seconds_bucket`},
		{"pgx pool", `brain_memory_pool_`},
		{"process RSS", `process_resident_memory_bytes`},
	} {
		if !regexp.MustCompile(want.re).MatchString(all) {
			t.Errorf("no panel for %s (want a query matching %s)", want.what, want.re)
		}
	}
	// Job label values the dashboard uses must be Prometheus' job names.
	for _, m := range regexp.MustCompile(`job=~?"([^"$]+)"`).FindAllStringSubmatch(all, -1) {
		for _, job := range strings.Split(m[1], "|") {
			if !slices.ContainsFunc(binaries(), func(b binary) bool { return b.name == job }) {
				t.Errorf("dashboard filters on job %q, which prometheus.yml does not scrape", job)
			}
		}
	}
}

// balanced reports the first bracket or quote mismatch in a PromQL query: the
// cheapest way to catch a hand-edited query Grafana would reject.
func balanced(expr string) string {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return "unbalanced " + string(r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	switch {
	case inQuote:
		return "unterminated string"
	case len(stack) > 0:
		return "unclosed " + string(stack[len(stack)-1])
	}
	return ""
}

func TestBalanced(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`sum by (job) (rate(x{a="(", b=~"a|b"}[5m]))`, ""},
		{`sum(rate(x[5m])`, "unclosed ("},
		{`rate(x[5m)]`, "unbalanced )"},
		{`x{a="b}`, "unterminated string"},
	} {
		if got := balanced(tc.expr); got != tc.want {
			t.Errorf("balanced(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
