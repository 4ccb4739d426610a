//go:build tools

// Package tools pins the commands hack/engine builds, so `go mod tidy` keeps
// them in go.sum.
package tools

import (
	_ "github.com/dagger/dagger/cmd/codegen"
	_ "github.com/dagger/dagger/cmd/dagger"
	_ "github.com/dagger/dagger/cmd/dialstdio"
	_ "github.com/dagger/dagger/cmd/dnsname"
	_ "github.com/dagger/dagger/cmd/engine"
	_ "github.com/dagger/dagger/cmd/init"
	_ "github.com/google/go-containerregistry/cmd/crane"
)
