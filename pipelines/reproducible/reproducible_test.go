package reproducible

import (
	"strings"
	"testing"
	"time"
)

func TestConfigKeepsContentAndDropsExportTimes(t *testing.T) {
	a := `{"architecture":"amd64","created":"2026-12-02T06:03:54.95874898Z","config":{"Labels":{"org.opencontainers.image.created":"2023-11-14T22:13:20Z"},"Env":["A=1"]},"history":[{"created":"2026-12-02T04:43:36Z","created_by":"copy"},{"created":"2026-12-02T06:03:54Z","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"size":12345678901234567}`
	b := strings.NewReplacer("06:03:54.95874898Z", "09:00:00Z", "04:43:36Z", "01:00:00Z", "06:03:54Z", "07:00:00Z").Replace(a)
	epoch := time.Unix(1700000000, 0)
	na, err := Config([]byte(a), epoch)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := Config([]byte(b), epoch)
	if err != nil {
		t.Fatal(err)
	}
	if string(na) != string(nb) {
		t.Fatalf("configs differing only in export times differ after:\n%s\n%s", na, nb)
	}
	for _, want := range []string{`"created":"2023-11-14T22:13:20Z","created_by":"copy"`, `"diff_ids":["sha256:aa"]`, `"size":12345678901234567`, `"empty_layer":true`, `"Env":["A=1"]`} {
		if !strings.Contains(string(na), want) {
			t.Errorf("normalised config lost %s:\n%s", want, na)
		}
	}
	if again, _ := Config(na, epoch); string(again) != string(na) {
		t.Error("normalising twice changes the bytes")
	}
	if _, err := Config([]byte(`{"history":["x"]}`), epoch); err == nil {
		t.Error("a history entry that is not an object passed")
	}
}

func TestIndexIsInPlatformOrderWhateverTheExportOrder(t *testing.T) {
	amd := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:01","size":10,"platform":{"architecture":"amd64","os":"linux"}}`
	arm := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:02","size":11,"platform":{"architecture":"arm64","os":"linux"}}`
	renamed := map[string]Descriptor{"sha256:01": {"sha256:a1", 20}, "sha256:02": {"sha256:a2", 21}}
	x, err := Index([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+amd+`,`+arm+`]}`), renamed)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Index([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+arm+`,`+amd+`]}`), renamed)
	if err != nil {
		t.Fatal(err)
	}
	if string(x) != string(y) {
		t.Fatalf("the export order shows through:\n%s\n%s", x, y)
	}
	s := string(x)
	if i, j := strings.Index(s, "sha256:a1"), strings.Index(s, "sha256:a2"); i < 0 || j < i || !strings.Contains(s, `"size":21`) || strings.Contains(s, "sha256:01") {
		t.Errorf("manifests not renamed or not amd64 first: %s", s)
	}
}

func TestManifestPointsAtTheNewConfig(t *testing.T) {
	m, err := Manifest([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:old","size":1},"layers":[{"digest":"sha256:l","size":5}]}`), Descriptor{"sha256:new", 2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), `"config":{"digest":"sha256:new","mediaType":"application/vnd.oci.image.config.v1+json","size":2}`) || !strings.Contains(string(m), `"layers":[{"digest":"sha256:l","size":5}]`) {
		t.Errorf("manifest: %s", m)
	}
	if _, err := Manifest([]byte(`{"layers":[]}`), Descriptor{}); err == nil {
		t.Error("a manifest without a config passed")
	}
}
