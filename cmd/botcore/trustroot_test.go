package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// testCert issues a CA certificate (self-signed when parent is nil) or,
// with codeSigning, a Fulcio-like leaf.
func testCert(t *testing.T, cn string, parent *x509.Certificate, parentKey crypto.Signer, codeSigning bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"bot-core test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if codeSigning {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	} else {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parentKey, parent
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		p, err := cryptoutils.MarshalCertificateToPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, p...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writePublicKey(t *testing.T, path string, curve elliptic.Curve) (string, crypto.PublicKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, key.Public()
}

func logID(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id := sha256.Sum256(der)
	return hex.EncodeToString(id[:])
}

// TestTrustRootSave builds a trusted root from a private Sigstore's pieces
// and reads it back with sigstore-go, the way verify --trusted-root does;
// bad pieces and unreachable TUF repositories are one sentence each and
// leave an existing file alone.
func TestTrustRootSave(t *testing.T) {
	dir := t.TempDir()
	rootCert, rootKey := testCert(t, "private Fulcio root", nil, nil, false)
	inter, interKey := testCert(t, "private Fulcio intermediate", rootCert, rootKey, false)
	leaf, _ := testCert(t, "signer", inter, interKey, true)
	chain := writePEM(t, filepath.Join(dir, "fulcio-chain.pem"), inter, rootCert)
	rekorFile, rekorPub := writePublicKey(t, filepath.Join(dir, "rekor.pub"), elliptic.P256())
	ctFile, ctPub := writePublicKey(t, filepath.Join(dir, "ctfe.pub"), elliptic.P384())

	out := filepath.Join(dir, "trusted_root.json")
	r := botcore(t, nil, "", "--json", "trust-root", "save", out,
		"--fulcio-roots", chain, "--fulcio-url", "https://fulcio.internal",
		"--rekor-public-key", rekorFile, "--rekor-url", "https://rekor.internal",
		"--ctlog-public-key", ctFile)
	if r.code != 0 {
		t.Fatal(r)
	}
	rep := decodeStdout[trustRootReport](t, r)
	if rep.Path != out || rep.Source != "pieces" || rep.FulcioCAs != 1 || rep.RekorLogs != 1 || rep.CTLogs != 1 || rep.Timestamper != 0 {
		t.Errorf("report: %+v", rep)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("saved file: %v %v", st, err)
	}

	tr, err := root.NewTrustedRootFromPath(out)
	if err != nil {
		t.Fatalf("sigstore-go cannot read the saved root: %v", err)
	}
	cas := tr.FulcioCertificateAuthorities()
	fca, ok := cas[0].(*root.FulcioCertificateAuthority)
	if len(cas) != 1 || !ok || !fca.Root.Equal(rootCert) || len(fca.Intermediates) != 1 || !fca.Intermediates[0].Equal(inter) || fca.URI != "https://fulcio.internal" {
		t.Fatalf("Fulcio CAs: %+v", cas)
	}
	// The CA verifies what its intermediate issued, and nothing else.
	if _, err := fca.Verify(leaf, time.Now()); err != nil {
		t.Errorf("a leaf of the private Fulcio does not verify: %v", err)
	}
	otherRoot, otherKey := testCert(t, "another root", nil, nil, false)
	if foreign, _ := testCert(t, "signer", otherRoot, otherKey, true); foreign != nil {
		if _, err := fca.Verify(foreign, time.Now()); err == nil {
			t.Error("a leaf of another CA verified")
		}
	}
	rekor := tr.RekorLogs()[logID(t, rekorPub)]
	if len(tr.RekorLogs()) != 1 || rekor == nil || rekor.BaseURL != "https://rekor.internal" || rekor.SignatureHashFunc != crypto.SHA256 {
		t.Errorf("Rekor logs: %+v", tr.RekorLogs())
	} else if !rekor.PublicKey.(*ecdsa.PublicKey).Equal(rekorPub) {
		t.Error("the Rekor key differs")
	}
	ct := tr.CTLogs()[logID(t, ctPub)]
	if len(tr.CTLogs()) != 1 || ct == nil || ct.SignatureHashFunc != crypto.SHA384 {
		t.Errorf("CT logs: %+v", tr.CTLogs())
	}

	// Text output names what was saved.
	r = botcore(t, nil, "", "trust-root", "save", out, "--fulcio-roots", chain)
	if r.code != 0 || !strings.Contains(r.stdout, "saved the Sigstore trusted root to "+out+": 1 Fulcio CA, 0 Rekor keys, 0 CT log keys, 0 timestamp authorities") {
		t.Errorf("text output: %s", r)
	}

	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onlyInter := writePEM(t, filepath.Join(dir, "inter.pem"), inter)
	twoRoots := writePEM(t, filepath.Join(dir, "two-roots.pem"), rootCert, otherRoot)
	publicGoodRoot := filepath.Join(dir, "root.json")
	if err := os.WriteFile(publicGoodRoot, tuf.DefaultRoot(), 0o644); err != nil {
		t.Fatal(err)
	}
	const old = "the previous trusted root\n"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not PEM", []string{"--fulcio-roots", notPEM}, 1, "the Fulcio CA chain " + notPEM + " holds no PEM certificate"},
		{"no root", []string{"--fulcio-roots", onlyInter}, 1, "the Fulcio CA chain " + onlyInter + " holds no self-signed root certificate: add your Fulcio's root"},
		{"two roots", []string{"--fulcio-roots", twoRoots}, 1, "holds more than one self-signed root: give each CA in its own file"},
		{"missing file", []string{"--fulcio-roots", filepath.Join(dir, "missing.pem")}, 1, "cannot read the Fulcio CA chain " + filepath.Join(dir, "missing.pem")},
		{"rekor key not a key", []string{"--rekor-public-key", chain}, 1, "the Rekor public key " + chain + " is not a PEM public key"},
		{"only CT keys", []string{"--ctlog-public-key", ctFile}, 2, "a trusted root needs --fulcio-roots (keyless signatures) or --rekor-public-key"},
		{"url without roots", []string{"--rekor-public-key", rekorFile, "--fulcio-url", "https://fulcio.internal"}, 2, "--fulcio-url names the Fulcio of --fulcio-roots: add --fulcio-roots"},
		{"TUF and pieces", []string{"--fulcio-roots", chain, "--tuf-mirror", "https://tuf.internal"}, 2, "give one kind or the other"},
		{"mirror without its root", []string{"--tuf-mirror", "https://tuf.internal"}, 2, "--tuf-mirror needs --tuf-root"},
		{"mirror root not TUF", []string{"--tuf-mirror", "http://127.0.0.1:1", "--tuf-root", chain}, 1, "the initial TUF root given is not a TUF root.json"},
		{"mirror unreachable", []string{"--tuf-mirror", "http://127.0.0.1:1", "--tuf-root", publicGoodRoot}, 1,
			"cannot fetch the Sigstore trusted root from TUF at http://127.0.0.1:1 (dial tcp 127.0.0.1:1: connect: connection refused): check --tuf-mirror, --tuf-root and the network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			r := botcore(t, nil, "", append([]string{"trust-root", "save", out}, tc.args...)...)
			if tc.code == 1 {
				wantError(t, r, tc.want)
			} else if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit %d and %q: %s", tc.code, tc.want, r)
			}
			if b, _ := os.ReadFile(out); string(b) != old {
				t.Errorf("the existing file was changed: %q", b)
			}
			if entries, _ := filepath.Glob(filepath.Join(dir, ".trusted_root.json.*")); len(entries) != 0 {
				t.Errorf("temporary files left: %v", entries)
			}
		})
	}
}
