package signing

import (
	"context"
	"crypto"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// EnvPassword is the password of an encrypted cosign private key.
const EnvPassword = "COSIGN_PASSWORD"

// KeyRef is a cosign key reference as given on the command line.
type KeyRef string

// Validate catches a key given where its reference belongs, before any
// message could echo it.
func (k KeyRef) Validate() error {
	s := string(k)
	if strings.Contains(s, "-----BEGIN") || strings.ContainsAny(s, "\n\r") {
		return ErrKeyNotRef
	}
	return nil
}

// envVar returns VAR for "env://VAR" (cosign's form) and "env:VAR" (the
// form CI systems and docker use).
func (k KeyRef) envVar() (string, bool) {
	s := string(k)
	if v, ok := strings.CutPrefix(s, "env://"); ok {
		return v, true
	}
	if v, ok := strings.CutPrefix(s, "env:"); ok {
		return v, true
	}
	return "", false
}

// local reports whether botcore reads the key itself: a file or an
// environment variable. Other references (k8s://, pkcs11:, KMS URIs,
// https://) go to cosign.
func (k KeyRef) local() bool {
	if _, ok := k.envVar(); ok {
		return true
	}
	s := string(k)
	return !strings.Contains(s, "://") && !strings.HasPrefix(s, "pkcs11:")
}

// read returns the PEM bytes of a local key. env is how variables are read
// (the CLI's env function, so tests need not touch the process).
func (k KeyRef) read(env func(string) string) ([]byte, error) {
	if v, ok := k.envVar(); ok {
		if v == "" {
			return nil, fmt.Errorf("the key reference %q names no environment variable: use env:VAR", string(k))
		}
		val := env(v)
		if val == "" {
			return nil, fmt.Errorf("the key reference %s names the environment variable %s, which is not set or empty", string(k), v)
		}
		return []byte(val), nil
	}
	b, err := os.ReadFile(string(k))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("the key file %s does not exist: give a key file, env:VAR, or a cosign key URI", string(k))
		}
		return nil, fmt.Errorf("cannot read the key file %s: %v", string(k), errors.Unwrap(err))
	}
	return b, nil
}

// LoadSigner loads a private key for signing. Encrypted cosign keys are
// decrypted with COSIGN_PASSWORD (read through env, empty when unset, which
// is what `cosign generate-key-pair` uses for an empty password).
func LoadSigner(ctx context.Context, ref KeyRef, env func(string) string) (signature.SignerVerifier, error) {
	password := env(EnvPassword)
	if !ref.local() {
		sv, err := sigs.SignerVerifierFromKeyRef(ctx, string(ref), func(bool) ([]byte, error) { return []byte(password), nil }, nil)
		if err != nil {
			return nil, fmt.Errorf("cannot load the signing key %s: %s", string(ref), redact(err.Error(), password))
		}
		return sv, nil
	}
	raw, err := ref.read(env)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("the signing key %s is not PEM: give a cosign.key from `cosign generate-key-pair` or a PEM private key", string(ref))
	}
	switch block.Type {
	case cosign.CosignPrivateKeyPemType, cosign.SigstorePrivateKeyPemType:
		sv, err := cosign.LoadPrivateKey(raw, []byte(password), nil)
		if err != nil {
			if password == "" {
				return nil, fmt.Errorf("cannot decrypt the signing key %s: it is encrypted, so set %s to its password", string(ref), EnvPassword)
			}
			return nil, fmt.Errorf("cannot decrypt the signing key %s: %s is not its password", string(ref), EnvPassword)
		}
		return sv, nil
	case "PUBLIC KEY":
		return nil, fmt.Errorf("the signing key %s is a public key: sign with the private key (cosign.key), verify with the public one", string(ref))
	}
	pk, err := cryptoutils.UnmarshalPEMToPrivateKey(raw, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("the signing key %s is not a private key botcore can read (PEM type %q): give a cosign.key or a PKCS#8/EC/RSA PEM key", string(ref), block.Type)
	}
	return signature.LoadDefaultSignerVerifier(pk, *cosign.GetDefaultLoadOptions(nil)...)
}

// LoadVerifier loads a public key for verification.
func LoadVerifier(ctx context.Context, ref KeyRef, env func(string) string) (signature.Verifier, error) {
	if !ref.local() {
		v, err := sigs.PublicKeyFromKeyRef(ctx, string(ref))
		if err != nil {
			return nil, fmt.Errorf("cannot load the public key %s: %v", string(ref), err)
		}
		return v, nil
	}
	raw, err := ref.read(env)
	if err != nil {
		return nil, err
	}
	v, err := sigs.LoadPublicKeyRaw(raw, crypto.SHA256)
	if err != nil {
		if block, _ := pem.Decode(raw); block != nil && strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("the key %s is a private key: verify with the public key (cosign.pub)", string(ref))
		}
		return nil, fmt.Errorf("the key %s is not a PEM public key: give the cosign.pub of the signing key", string(ref))
	}
	return v, nil
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted>")
}
