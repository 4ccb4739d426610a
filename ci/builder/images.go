// Package builder turns one service's source into a small runtime image for
// one platform, with one function per language. Builders are plain Go
// packages inside the module rather than separate Dagger modules: they share
// the module's client and types, load with it in one step, and need no
// generated bindings of their own.
package builder

// Images are the base images of every builder and runtime, in one place.
// Defaults are the official images; the hermetic engine's registry serves
// Debian-built stand-ins under the same names.
type Images struct {
	RustBuilder   string `json:"rustBuilder"`
	RustRuntime   string `json:"rustRuntime"`
	PythonBuilder string `json:"pythonBuilder"`
	PythonRuntime string `json:"pythonRuntime"`
	NodeBuilder   string `json:"nodeBuilder"`
	NodeRuntime   string `json:"nodeRuntime"`
}

// DefaultImages are the official images the builders are written against.
var DefaultImages = Images{
	RustBuilder:   "rust:1-slim-trixie",
	RustRuntime:   "gcr.io/distroless/cc-debian13:nonroot",
	PythonBuilder: "python:3.13-trixie",
	PythonRuntime: "python:3.13-slim-trixie",
	NodeBuilder:   "node:20-trixie",
	NodeRuntime:   "node:20-trixie-slim",
}

// NonRoot is the user every runtime image runs as (distroless's "nonroot").
const NonRoot = "65532:65532"
