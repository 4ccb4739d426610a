package release

// Tool names the botcore binary that scanned, SBOM'd and signed a release:
// `botcore version --json` prints it, and build-all records it with where the
// binary came from.
type Tool struct {
	// Source is "given" (build-all --tool) or "engine" (compiled in the
	// engine from the repository); empty in botcore's own output.
	Source string `json:"source,omitempty"`
	// SHA256 is the hex sha256 of the executable.
	SHA256 string `json:"sha256"`
	// Version is the module version it was built as, "(devel)" for a build
	// from a checkout.
	Version string `json:"version"`
	// Revision is the commit of the checkout it was built in, when go build
	// could read one; Modified says the tree had local changes.
	Revision string `json:"revision,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// Libraries maps trivy, syft, cosign and ggcr to the linked versions.
	Libraries map[string]string `json:"libraries"`
}
