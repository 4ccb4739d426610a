package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// debianArchive runs apt-get and apt-cache against Debian trixie (the suite
// of the base images) through the host's mirror, with a private state
// directory: nothing is installed, and the host's own apt state is left
// alone.
type debianArchive struct {
	t    testing.TB
	work string
}

func newDebianArchive(t testing.TB) *debianArchive {
	t.Helper()
	const hostSources = "/etc/apt/sources.list.d/debian.sources"
	d := &debianArchive{t: t, work: t.TempDir()}
	for _, dir := range []string{"etc", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(d.work, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sources, err := os.ReadFile(hostSources)
	if err != nil {
		t.Fatalf("the test's package index and crates are made from Debian packages: %v", err)
	}
	suite := regexp.MustCompile(`\b(bookworm|trixie)(-updates|-security)?\b`)
	if err := os.WriteFile(filepath.Join(d.work, "etc", "trixie.sources"), suite.ReplaceAll(sources, []byte("trixie$2")), 0o644); err != nil {
		t.Fatal(err)
	}
	d.run("", "apt-get", "update", "-qq")
	return d
}

// run runs an apt tool in dir and returns its output.
func (d *debianArchive) run(dir, tool string, args ...string) string {
	d.t.Helper()
	opts := []string{"-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=" + filepath.Join(d.work, "etc"),
		"-o", "Dir::State::Lists=" + filepath.Join(d.work, "lists"), "-o", "Dir::Cache=" + filepath.Join(d.work, "cache"),
		"-o", "Dir::State::status=/dev/null", "-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
		"-o", "APT::Architectures::=arm64", "-o", "Acquire::Check-Valid-Until=false", "-o", "Debug::NoLocking=1",
		"-o", "APT::Sandbox::User=root", "-o", "Acquire::Languages=none"}
	cmd := exec.Command(tool, append(opts, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, tail(string(out), 20))
	}
	return string(out)
}

// download fetches the named packages (name or name:arch) and unpacks
// each into its own directory, which it returns by .deb file name.
func (d *debianArchive) download(names ...string) map[string]string {
	d.t.Helper()
	debs := d.t.TempDir()
	d.run(debs, "apt-get", append([]string{"download", "-qq"}, names...)...)
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	if len(files) != len(names) {
		d.t.Fatalf("downloaded %d packages for %d names", len(files), len(names))
	}
	out := map[string]string{}
	for _, deb := range files {
		root := filepath.Join(debs, "x", filepath.Base(deb))
		if err := os.MkdirAll(root, 0o755); err != nil {
			d.t.Fatal(err)
		}
		if b, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
			d.t.Fatalf("dpkg-deb -x %s: %v %s", deb, err, b)
		}
		out[filepath.Base(deb)] = root
	}
	return out
}

// PyPI is out of reach here, but Debian's binary packages carry real
// third-party Python distributions with their metadata. pythonWheels
// downloads the named packages and repacks each as a wheel: pure ones as
// py3-none-any, ones with extension modules once per architecture (cp313
// tags), so pip on each platform must pick its own.
func (d *debianArchive) pythonWheels(pkgs ...string) string {
	t := d.t
	t.Helper()
	var names []string
	for _, p := range pkgs {
		if strings.Contains(d.run("", "apt-cache", "show", "--no-all-versions", p+":amd64"), "\nArchitecture: all") {
			names = append(names, p)
		} else {
			names = append(names, p+":amd64", p+":arm64")
		}
	}
	wheels := t.TempDir()
	for deb, root := range d.download(names...) {
		arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[strings.TrimSuffix(deb[strings.LastIndex(deb, "_")+1:], ".deb")]
		repackWheel(t, filepath.Join(root, "usr/lib/python3/dist-packages"), arch, wheels)
	}
	return wheels
}

// repackWheel writes the one distribution under site (a dist-packages tree)
// as a wheel into out. Debian ships some as .egg-info: their PKG-INFO is the
// METADATA, and requires.txt's unconditional lines become Requires-Dist.
func repackWheel(t testing.TB, site, arch, out string) {
	t.Helper()
	infos, _ := filepath.Glob(filepath.Join(site, "*.*-info"))
	if len(infos) != 1 {
		t.Fatalf("%s: want one .dist-info or .egg-info, found %v", site, infos)
	}
	files := map[string][]byte{}
	var native bool
	err := filepath.WalkDir(site, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && d.Name() == "__pycache__" {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".pyc") {
			return nil
		}
		rel, _ := filepath.Rel(site, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		native = native || strings.HasSuffix(p, ".so")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	info := filepath.Base(infos[0])
	meta := files[info+"/METADATA"]
	if strings.HasSuffix(info, ".egg-info") {
		meta = files[info+"/PKG-INFO"]
		var reqs []string
		for _, l := range strings.Split(string(files[info+"/requires.txt"]), "\n") {
			if strings.HasPrefix(l, "[") {
				break
			}
			if l = strings.TrimSpace(l); l != "" {
				reqs = append(reqs, "Requires-Dist: "+l)
			}
		}
		head, body, _ := strings.Cut(string(meta), "\n\n")
		meta = []byte(strings.Join(append([]string{head}, reqs...), "\n") + "\n\n" + body)
		for name := range files {
			if strings.HasPrefix(name, info+"/") {
				delete(files, name)
			}
		}
	}
	field := func(k string) string {
		m := regexp.MustCompile(`(?m)^` + k + `: *(.+)$`).FindSubmatch(meta)
		if m == nil {
			t.Fatalf("%s: no %s in its metadata", site, k)
		}
		return strings.TrimSpace(string(m[1]))
	}
	name := regexp.MustCompile(`[-_.]+`).ReplaceAllString(field("Name"), "_")
	version := field("Version")
	distInfo := name + "-" + version + ".dist-info"
	if strings.HasSuffix(info, ".egg-info") {
		files[distInfo+"/METADATA"] = meta
	}
	tag := "py3-none-any"
	if native {
		tag = "cp313-cp313-linux_" + arch
	}
	files[distInfo+"/WHEEL"] = []byte("Wheel-Version: 1.0\nGenerator: bot-core-e2e (repacked from Debian)\nRoot-Is-Purelib: " +
		fmt.Sprint(!native) + "\nTag: " + tag + "\n")
	delete(files, distInfo+"/RECORD")
	var names []string
	var record bytes.Buffer
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(files[n])
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", n, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[n]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	files[distInfo+"/RECORD"] = record.Bytes()
	names = append(names, distInfo+"/RECORD")

	f, err := os.Create(filepath.Join(out, fmt.Sprintf("%s-%s-%s.whl", name, version, tag)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z := zip.NewWriter(f)
	for _, n := range names {
		w, err := z.Create(n)
		if err == nil {
			_, err = w.Write(files[n])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
}

// pyIndex is a PEP 503 "simple" index of a directory of wheels that wants
// HTTP basic credentials, listening where the engine's containers reach
// this machine.
type pyIndex struct {
	URL string
	mu  sync.Mutex
	// downloads counts the wheels fetched with the right credentials;
	// refused counts requests without them.
	downloads map[string]int
	refused   int
}

func servePyIndex(t testing.TB, wheels, user, password string) *pyIndex {
	t.Helper()
	entries, err := os.ReadDir(wheels)
	if err != nil {
		t.Fatal(err)
	}
	projects := map[string][]string{} // normalized name -> wheel files
	for _, e := range entries {
		dist, _, _ := strings.Cut(e.Name(), "-")
		norm := strings.ToLower(regexp.MustCompile(`[-_.]+`).ReplaceAllString(dist, "-"))
		projects[norm] = append(projects[norm], e.Name())
	}
	idx := &pyIndex{downloads: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /simple/{$}", func(w http.ResponseWriter, r *http.Request) {
		for p := range projects {
			fmt.Fprintf(w, "<a href=\"/simple/%s/\">%s</a>\n", p, p)
		}
	})
	mux.HandleFunc("GET /simple/{project}/{$}", func(w http.ResponseWriter, r *http.Request) {
		files, ok := projects[r.PathValue("project")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "<!DOCTYPE html><html><body>\n")
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(wheels, f))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			sum := sha256.Sum256(b)
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%s\">%s</a>\n", f, hex.EncodeToString(sum[:]), f)
		}
		fmt.Fprint(w, "</body></html>\n")
	})
	mux.HandleFunc("GET /files/{file}", func(w http.ResponseWriter, r *http.Request) {
		idx.mu.Lock()
		idx.downloads[r.PathValue("file")]++
		idx.mu.Unlock()
		http.ServeFile(w, r, filepath.Join(wheels, filepath.Base(r.PathValue("file"))))
	})
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			idx.mu.Lock()
			idx.refused++
			idx.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
			http.Error(w, "credentials, please", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", containerHost(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: auth}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	idx.URL = "http://" + ln.Addr().String() + "/simple/"
	return idx
}

func (p *pyIndex) fetched() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.downloads {
		out[k] = v
	}
	return out
}

// containerHost is this machine's address as the engine's containers see
// it: the hermetic engine's bridge (BOTCORE_E2E_CONTAINER_HOST overrides).
func containerHost(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("BOTCORE_E2E_CONTAINER_HOST"); h != "" {
		return h
	}
	ifc, err := net.InterfaceByName("dagger0")
	if err != nil {
		t.Fatalf("no dagger0 bridge (is the hermetic engine up?): %v; set BOTCORE_E2E_CONTAINER_HOST to an address of this machine the engine's containers reach", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
			return ip.IP.String()
		}
	}
	t.Fatalf("dagger0 has no IPv4 address")
	return ""
}
