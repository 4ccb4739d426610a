package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	manifest "github.com/bot-core/delivery/pipelines/services"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

const composePath = "docker-compose.prod.yml"

// services are the three bot-core services with their container ports.
var services = []struct {
	name string
	port uint32
}{
	{"rust-core-engine", 8080},
	{"python-ai-service", 8000},
	{"nextjs-ui-dashboard", 3000},
}

// declaredHealthchecks are the health checks the pipeline declares in each
// image of services.yaml (labels.LabelHealthcheck).
func declaredHealthchecks(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), manifest.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range m.Services {
		out[s.Name] = s.Healthcheck()
	}
	return out
}

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir := root(t)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, composePath)}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("bot-core", true) })
}

// TestComposeProd loads docker-compose.prod.yml with compose-go (schema
// validation and interpolation included) and checks each service.
func TestComposeProd(t *testing.T) {
	p, err := loadCompose(t, map[string]string{"DOCKER_REGISTRY": "ghcr.io/acme/bot-core", "VERSION": "v1.2.3"})
	if err != nil {
		t.Fatalf("%s does not load: %v", composePath, err)
	}
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	want := []string{"rust-core-engine", "python-ai-service", "nextjs-ui-dashboard"}
	if !sameStrings(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	declared := declaredHealthchecks(t)
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			svc := p.Services[s.name]
			if img := "ghcr.io/acme/bot-core/" + s.name + ":v1.2.3"; svc.Image != img {
				t.Errorf("image %q, want %q (${DOCKER_REGISTRY}/<service>:${VERSION})", svc.Image, img)
			}
			if svc.PullPolicy != types.PullPolicyAlways {
				t.Errorf("pull_policy %q, want always", svc.PullPolicy)
			}
			if svc.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("restart %q, want unless-stopped", svc.Restart)
			}
			if svc.Labels["com.bot-core.version"] != "v1.2.3" {
				t.Errorf("label com.bot-core.version = %q, want v1.2.3", svc.Labels["com.bot-core.version"])
			}
			if svc.Deploy == nil || svc.Deploy.UpdateConfig == nil {
				t.Fatal("no deploy.update_config")
			}
			uc := svc.Deploy.UpdateConfig
			if uc.Order != "start-first" || uc.FailureAction != "rollback" || uc.Parallelism == nil || *uc.Parallelism != 1 {
				t.Errorf("update_config order=%q failure_action=%q parallelism=%v, want start-first, rollback, 1", uc.Order, uc.FailureAction, uc.Parallelism)
			}
			hc := svc.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
				t.Fatalf("healthcheck %+v, want an exec-form CMD", hc)
			}
			if !slices.Equal(hc.Test[1:], declared[s.name]) {
				t.Errorf("healthcheck runs %q, want what the image declares, %q", hc.Test[1:], declared[s.name])
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("healthcheck needs interval, timeout and retries: %+v", hc)
			}
			if len(svc.Ports) != 1 || svc.Ports[0].Target != s.port || svc.Ports[0].Published == "" {
				t.Errorf("ports %+v, want one mapping to container port %d", svc.Ports, s.port)
			}
			if len(svc.EnvFiles) != 1 || bool(svc.EnvFiles[0].Required) {
				t.Errorf("env_file %+v, want one optional file", svc.EnvFiles)
			}
			for _, f := range svc.EnvFiles {
				if filepath.Base(f.Path) == ".env" {
					t.Errorf("env_file %s would hand the registry and cloud credentials of .env to the container", f.Path)
				}
			}
			if v := svc.Environment["VERSION"]; v == nil || *v != "v1.2.3" {
				t.Errorf("environment VERSION = %v, want v1.2.3 (the services report it on /health)", v)
			}
		})
	}
	dash := p.Services["nextjs-ui-dashboard"]
	for _, dep := range []string{"rust-core-engine", "python-ai-service"} {
		if d, ok := dash.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("nextjs-ui-dashboard depends_on %s: %+v, want condition service_healthy", dep, d)
		}
	}
}

// TestComposeDefaults: without VERSION the stack runs latest; the host
// ports follow their variables.
func TestComposeDefaults(t *testing.T) {
	p, err := loadCompose(t, map[string]string{"DOCKER_REGISTRY": "registry.example.com/bot-core", "PYTHON_AI_SERVICE_PORT": "18000"})
	if err != nil {
		t.Fatal(err)
	}
	if img := p.Services["rust-core-engine"].Image; img != "registry.example.com/bot-core/rust-core-engine:latest" {
		t.Errorf("image without VERSION: %q", img)
	}
	published := map[string]string{}
	for n, s := range p.Services {
		published[n] = s.Ports[0].Published
	}
	want := map[string]string{"rust-core-engine": "8080", "python-ai-service": "18000", "nextjs-ui-dashboard": "3000"}
	for n, w := range want {
		if published[n] != w {
			t.Errorf("%s published on %q, want %q", n, published[n], w)
		}
	}
}

// TestComposeNeedsRegistry: without DOCKER_REGISTRY loading fails and says
// what to set.
func TestComposeNeedsRegistry(t *testing.T) {
	for _, env := range []map[string]string{{"VERSION": "v1.2.3"}, {"DOCKER_REGISTRY": "", "VERSION": "v1.2.3"}} {
		_, err := loadCompose(t, env)
		if err == nil {
			t.Fatalf("loaded with %v", env)
		}
		if msg := err.Error(); !strings.Contains(msg, "DOCKER_REGISTRY") || !strings.Contains(msg, "set DOCKER_REGISTRY") {
			t.Errorf("error %q does not tell to set DOCKER_REGISTRY", msg)
		}
	}
}
