// Package builder turns one service's source into a small runtime image for
// one platform, with one function per language. Builders are plain Go
// packages inside the module rather than separate Dagger modules: they share
// the module's client and types, load with it in one step, and need no
// generated bindings of their own.
package builder

// Images are the base images of every builder and runtime, in one place:
// images.lock's entries (pipelines/imagelock), by digest, or the images the
// module was given.
type Images struct {
	RustBuilder   string `json:"rustBuilder"`
	RustRuntime   string `json:"rustRuntime"`
	PythonBuilder string `json:"pythonBuilder"`
	PythonRuntime string `json:"pythonRuntime"`
	NodeBuilder   string `json:"nodeBuilder"`
	NodeRuntime   string `json:"nodeRuntime"`
}

// NonRoot is the user every runtime image runs as (distroless's "nonroot").
const NonRoot = "65532:65532"
