package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"
	"github.com/bot-core/delivery/cmd/botcore/internal/credentials"
	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/bot-core/delivery/pipelines/vuln"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// remoteOptions are the go-containerregistry options of every registry call.
func (a *app) remoteOptions(info registry.Info) []remote.Option {
	return []remote.Option{
		remote.WithContext(a.ctx),
		remote.WithAuthFromKeychain(credentials.Keychain(info, a.env)),
		remote.WithUserAgent("botcore"),
	}
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
}

// serviceNames returns the selected services, by default the services of
// the bot-core manifest.
func serviceNames(selected []string) []string {
	if len(selected) > 0 {
		return selected
	}
	return services.Default().Names()
}

// checkServices validates --service names before any registry or file is
// touched: a name is joined to the registry prefix and to pull's output
// directory, so "../x" must never get that far.
func checkServices(names []string) error {
	for _, n := range names {
		if err := services.ValidateName(n); err != nil {
			return fmt.Errorf("--service: %w", err)
		}
	}
	return nil
}

// shortDigest abbreviates a digest for tables ("sha256:0123456789ab"),
// the way the internal packages print digests too.
var shortDigest = digests.Short

// cliVars are the values flag tags interpolate (${name}): the policies the
// CLI shares with the Dagger module, so its defaults and help cannot drift
// from them.
func cliVars() kong.Vars {
	return kong.Vars{
		"fulcio_url":         signpolicy.DefaultFulcioURL,
		"rekor_url":          signpolicy.DefaultRekorURL,
		"default_severities": vuln.DefaultSeverities,
		"severities":         strings.Join(vuln.Severities, ", "),
	}
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// humanSize prints bytes with a binary unit.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
