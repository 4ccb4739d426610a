package dockertest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AppPath is where the app binary lives in the image.
const AppPath = "/app"

// BuildApp compiles testapp (static, linux, the host's architecture) into a
// temporary directory and returns the binary's path.
func BuildApp(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testapp")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/bot-core/delivery/cmd/botcore/internal/dockertest/testapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dockertest: building testapp: %v\n%s", err, out)
	}
	t.Logf("dockertest: built testapp in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// AppIndex is a one-platform (linux/<host arch>) image index whose image
// runs `/app serve` with the OCI title and version labels set to service
// and version, declares `/app healthcheck` as its health check, and has
// BROKEN=1 when broken (its /health then answers 503).
func AppIndex(t testing.TB, bin, service, version string, broken bool) v1.ImageIndex {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	modTime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Name: AppPath[1:], Mode: 0o755, Size: int64(len(data)), ModTime: modTime, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: modTime}
	cf.Config.Entrypoint = []string{AppPath}
	cf.Config.Cmd = []string{"serve"}
	cf.Config.Env = []string{"APP_VERSION=" + version}
	if broken {
		cf.Config.Env = append(cf.Config.Env, "BROKEN=1")
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   service,
		"org.opencontainers.image.version": version,
		// The health check the image declares, as the pipeline's images do.
		"com.bot-core.healthcheck": `["` + AppPath + `","healthcheck"]`,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}},
	})
}
