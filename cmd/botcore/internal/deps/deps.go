//go:build tools

// Package deps pins the supply-chain libraries in go.mod while the packages
// that use them are being written; remove an import once real code has it.
package deps

import (
	_ "github.com/anchore/syft/syft"
	_ "github.com/aquasecurity/trivy-db/pkg/db"
	_ "github.com/aquasecurity/trivy/pkg/commands/artifact"
	_ "github.com/sigstore/cosign/v2/cmd/cosign"
	_ "github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	_ "github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"
	_ "github.com/spdx/tools-golang/spdx"
	_ "github.com/compose-spec/compose-go/v2/loader"
	_ "github.com/rhysd/actionlint"
)
