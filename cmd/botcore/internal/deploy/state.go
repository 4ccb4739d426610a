package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is what deploy knows about one compose project on one host: the
// digests that run now and the ones that ran before, as they were observed
// on the Docker engine, not as tags resolve later. Rollback pins Previous's
// digests; cleanup never deletes a digest a state file names.
type State struct {
	Project string `json:"project"`
	// Running is the release the project's containers run.
	Running *Release `json:"running,omitempty"`
	// Previous is what ran before Running: the rollback target.
	Previous *Release `json:"previous,omitempty"`
	// Updated is when deploy last wrote the file.
	Updated time.Time `json:"updated"`
}

// StateFile is where deploy keeps the state of project: next to the compose
// file, so the stack's directory holds everything needed to roll it back.
func StateFile(composeFile, project string) string {
	return filepath.Join(filepath.Dir(composeFile), ".botcore-deploy."+project+".json")
}

// LoadState reads a state file; a missing file is a nil State and no error
// (nothing was deployed by botcore yet).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the deploy state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("deploy state %s is not valid JSON: %w", path, err)
	}
	return &s, nil
}

// Save writes the state atomically (a new file renamed over the old one),
// so an interrupted deploy never leaves half a state file behind.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".botcore-deploy-*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write the deploy state next to the compose file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Digests are the image digests the state names (running and previous):
// what cleanup must keep.
func (s *State) Digests() []string {
	var out []string
	for _, r := range []*Release{s.Running, s.Previous} {
		if r == nil {
			continue
		}
		for _, img := range r.Images {
			out = append(out, img.Digest)
		}
	}
	return out
}
