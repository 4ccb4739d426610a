package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// cargoRegistry is a private cargo registry as a company runs one: a sparse
// index (cargo's HTTP protocol) that wants a token on every request
// (auth-required), serving crate files. Its crates are the sources Debian
// ships in its librust-*-dev packages, each packed as a .crate and indexed
// from its own Cargo.toml: crates as published, not code of this project.
type cargoRegistry struct {
	// Index is the sparse index URL, as --cargo-registry takes it.
	Index string
	// Sums are the .crate checksums by name-version, for Cargo.lock.
	Sums map[string]string

	mu        sync.Mutex
	downloads map[string]int // name-version -> downloads
	refused   int            // requests without the token
}

// indexDep is one dependency of an index entry (cargo's registry index format).
type indexDep struct {
	Name            string   `json:"name"`
	Req             string   `json:"req"`
	Features        []string `json:"features"`
	Optional        bool     `json:"optional"`
	DefaultFeatures bool     `json:"default_features"`
	Target          *string  `json:"target"`
	Kind            string   `json:"kind"`
	Registry        *string  `json:"registry"`
	Package         string   `json:"package,omitempty"`
}

type indexEntry struct {
	Name      string              `json:"name"`
	Vers      string              `json:"vers"`
	Deps      []indexDep          `json:"deps"`
	Cksum     string              `json:"cksum"`
	Features  map[string][]string `json:"features"`
	Features2 map[string][]string `json:"features2,omitempty"`
	V         int                 `json:"v,omitempty"`
	Yanked    bool                `json:"yanked"`
	Links     string              `json:"links,omitempty"`
}

// serveCargoRegistry packs and indexes the crates (source directories by
// name-version) and serves them to the engine's containers, asking for token.
func serveCargoRegistry(t testing.TB, crates map[string]string, token string) *cargoRegistry {
	t.Helper()
	reg := &cargoRegistry{Sums: map[string]string{}, downloads: map[string]int{}}
	files := map[string][]byte{}       // name-version -> .crate
	index := map[string][]indexEntry{} // lower-case name -> entries
	for nv, dir := range crates {
		entry, crate := packCrate(t, nv, dir)
		files[entry.Name+"-"+entry.Vers] = crate
		reg.Sums[entry.Name+"-"+entry.Vers] = entry.Cksum
		index[strings.ToLower(entry.Name)] = append(index[strings.ToLower(entry.Name)], entry)
	}

	ln, err := net.Listen("tcp", containerHost(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /index/config.json", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"dl": base + "/dl/{crate}/{version}", "api": base, "auth-required": true})
	})
	mux.HandleFunc("GET /index/", func(w http.ResponseWriter, r *http.Request) {
		// /index/1/a, /index/2/ab, /index/3/a/abc, /index/se/rd/serde
		name := filepath.Base(r.URL.Path)
		entries, ok := index[name]
		if !ok || r.URL.Path != "/index/"+indexPath(name) {
			http.NotFound(w, r)
			return
		}
		for _, e := range entries {
			b, _ := json.Marshal(e)
			w.Write(append(b, '\n'))
		}
	})
	mux.HandleFunc("GET /dl/{crate}/{version}", func(w http.ResponseWriter, r *http.Request) {
		nv := r.PathValue("crate") + "-" + r.PathValue("version")
		b, ok := files[nv]
		if !ok {
			http.NotFound(w, r)
			return
		}
		reg.mu.Lock()
		reg.downloads[nv]++
		reg.mu.Unlock()
		w.Write(b)
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// cargo sends the token as it is, without a scheme.
		if r.Header.Get("Authorization") != token {
			reg.mu.Lock()
			reg.refused++
			reg.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Cargo login_url="`+base+`/me"`)
			http.Error(w, "token, please", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	reg.Index = "sparse+" + base + "/index/"
	return reg
}

// indexPath is where the sparse index keeps a crate's entries.
func indexPath(name string) string {
	switch len(name) {
	case 1:
		return "1/" + name
	case 2:
		return "2/" + name
	case 3:
		return "3/" + name[:1] + "/" + name
	}
	return name[:2] + "/" + name[2:4] + "/" + name
}

// packCrate makes the .crate of a crate source directory (a gzipped tar of
// name-version/...) and its index entry, read from its Cargo.toml.
func packCrate(t testing.TB, nv, dir string) (indexEntry, []byte) {
	t.Helper()
	var manifest struct {
		Package struct {
			Name, Version, Links string
		}
		Features          map[string][]string
		Dependencies      map[string]any
		BuildDependencies map[string]any `toml:"build-dependencies"`
		Target            map[string]struct {
			Dependencies      map[string]any
			BuildDependencies map[string]any `toml:"build-dependencies"`
		}
	}
	if _, err := toml.DecodeFile(filepath.Join(dir, "Cargo.toml"), &manifest); err != nil {
		t.Fatalf("crate %s: Cargo.toml: %v", nv, err)
	}
	e := indexEntry{Name: manifest.Package.Name, Vers: manifest.Package.Version, Links: manifest.Package.Links,
		Features: map[string][]string{}, Deps: []indexDep{}}
	// Debian's directory names drop build metadata (bzip2-sys-0.1.11 holds
	// 0.1.11+1.0.8); the archive is named as cargo asks for it.
	if !strings.HasPrefix(e.Name+"-"+e.Vers, nv) {
		t.Fatalf("crate directory %s holds %s %s", nv, e.Name, e.Vers)
	}
	nv = e.Name + "-" + e.Vers
	add := func(deps map[string]any, kind string, target *string) {
		for name, v := range deps {
			d := indexDep{Name: name, Req: "*", Kind: kind, Target: target, DefaultFeatures: true, Features: []string{}}
			switch v := v.(type) {
			case string:
				d.Req = v
			case map[string]any:
				if s, ok := v["version"].(string); ok {
					d.Req = s
				}
				if b, ok := v["optional"].(bool); ok {
					d.Optional = b
				}
				for _, k := range []string{"default-features", "default_features"} {
					if b, ok := v[k].(bool); ok {
						d.DefaultFeatures = b
					}
				}
				if fs, ok := v["features"].([]any); ok {
					for _, f := range fs {
						d.Features = append(d.Features, f.(string))
					}
				}
				if p, ok := v["package"].(string); ok {
					d.Package = p
				}
			}
			e.Deps = append(e.Deps, d)
		}
	}
	add(manifest.Dependencies, "normal", nil)
	add(manifest.BuildDependencies, "build", nil)
	for cfg, deps := range manifest.Target {
		add(deps.Dependencies, "normal", &cfg)
		add(deps.BuildDependencies, "build", &cfg)
	}
	sort.Slice(e.Deps, func(i, j int) bool { return e.Deps[i].Name+e.Deps[i].Kind < e.Deps[j].Name+e.Deps[j].Kind })
	// Features using dep: or ?/ go in features2, as crates.io indexes them.
	for f, list := range manifest.Features {
		if strings.Contains(strings.Join(list, " "), "dep:") || strings.Contains(strings.Join(list, " "), "?/") {
			if e.Features2 == nil {
				e.Features2, e.V = map[string][]string{}, 2
			}
			e.Features2[f] = list
		} else {
			e.Features[f] = list
		}
	}

	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		h := &tar.Header{Name: nv + "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	e.Cksum = hex.EncodeToString(sum[:])
	return e, buf.Bytes()
}

// lockToRegistry points a project's Cargo.lock at the registry's crates:
// the checksum of every crates.io package becomes that of the registry's
// file, as if crates.io had published those. A mirror serves crates.io's
// own files, so a real project's lockfile needs no such change.
func (reg *cargoRegistry) lockToRegistry(t testing.TB, project string) {
	t.Helper()
	path := filepath.Join(project, "Cargo.lock")
	lock, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pkg := regexp.MustCompile(`(?m)^name = "([^"]+)"\nversion = "([^"]+)"\n(source = "registry\+[^"]+"\n)checksum = "[^"]*"`)
	var missing []string
	lock = pkg.ReplaceAllFunc(lock, func(m []byte) []byte {
		sub := pkg.FindSubmatch(m)
		sum, ok := reg.Sums[string(sub[1])+"-"+string(sub[2])]
		if !ok {
			missing = append(missing, string(sub[1])+" "+string(sub[2]))
		}
		return []byte("name = \"" + string(sub[1]) + "\"\nversion = \"" + string(sub[2]) + "\"\n" + string(sub[3]) + "checksum = \"" + sum + "\"")
	})
	if len(missing) > 0 {
		t.Fatalf("%s: the registry has no %v", path, missing)
	}
	if err := os.WriteFile(path, lock, 0o644); err != nil {
		t.Fatal(err)
	}
}

// counts are the crates downloaded (by name-version) and the requests
// refused for want of the token.
func (reg *cargoRegistry) counts() (map[string]int, int) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	out := map[string]int{}
	for k, v := range reg.downloads {
		out[k] = v
	}
	return out, reg.refused
}
