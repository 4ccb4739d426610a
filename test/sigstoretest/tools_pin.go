//go:build tools

package sigstoretest

// CosignBinary builds the cosign CLI from this module, so go.mod must carry
// every module the CLI needs, not only those botcore imports.
import _ "github.com/sigstore/cosign/v2/cmd/cosign"
