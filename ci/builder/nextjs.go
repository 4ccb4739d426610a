package builder

import (
	"crypto/sha256"
	"encoding/hex"

	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/pkgindex"
)

// nextjsBuild runs `npm ci` and `next build` once, on the build platform:
// the standalone output is plain JavaScript, the same for every platform.
func nextjsBuild(c *dagger.Client, s Spec) *dagger.Directory {
	// .npmrc goes with the lockfile: it says which registry npm ci installs from.
	lock := s.Source.Filter(dagger.DirectoryFilterOpts{Include: []string{"package.json", "package-lock.json", ".npmrc"}})
	installed := npmCI(c.Container(dagger.ContainerOpts{Platform: s.BuildPlatform}).
		From(s.Images.NodeBuilder).
		WithEnvVariable("NEXT_TELEMETRY_DISABLED", "1").
		// Next's own switch for a standalone build when next.config leaves
		// output unset (its default configuration reads it): an app needs no
		// output: "standalone" of its own. An explicit output wins.
		WithEnvVariable("NEXT_PRIVATE_STANDALONE", "true").
		WithWorkdir("/src").
		// Dependencies first: a source change then reuses the npm ci layer.
		WithDirectory("/src", lock), c, s.Indexes.Npm)
	built := installed.
		WithDirectory("/src", s.Source, dagger.ContainerWithDirectoryOpts{Exclude: []string{"node_modules", ".next"}}).
		// public/ is optional in Next.js; the layout below always copies it.
		WithExec(sh(`npm run build
mkdir -p public
[ -f .next/standalone/server.js ] || {
  echo "service ` + s.Service.Name + `: next build made no standalone server (.next/standalone/server.js): next.config sets output to something else (e.g. 'export'); remove it or set output: 'standalone'" >&2
  exit 1
}`)).
		Directory("/src")
	// Lay the app out as Next's standalone docs describe: server.js with its
	// traced node_modules, plus the static assets and public files beside it.
	return c.Directory().
		WithDirectory("/", built.Directory(".next/standalone")).
		WithDirectory(".next/static", built.Directory(".next/static")).
		WithDirectory("public", built.Directory("public")).
		WithTimestamps(s.Epoch)
}

func nextjs(c *dagger.Client, s Spec) (*dagger.Container, error) {
	return c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.NodeRuntime).
		WithDirectory("/app", nextjsBuild(c, s)).
		WithWorkdir("/app").
		WithEnvVariable("NODE_ENV", "production").
		WithEnvVariable("NEXT_TELEMETRY_DISABLED", "1").
		WithEnvVariable("HOSTNAME", "0.0.0.0").
		WithEntrypoint([]string{"node", "server.js"}), nil
}

// NpmRegistry is the registry npm installs from, and its token (nil
// without).
type NpmRegistry struct {
	pkgindex.Npm
	Token *dagger.Secret
}

// npmCI runs npm ci against the given registry. The token reaches npm as a
// user .npmrc written from the secret on a scratch mount, for this step
// only. Each registry has its own npm cache: a build against a private
// registry fetches from it as a fresh runner would, instead of being served
// whatever another registry's build left.
func npmCI(ctr *dagger.Container, c *dagger.Client, reg NpmRegistry) *dagger.Container {
	volume := "bot-core-npm"
	if reg.Registry != "" {
		sum := sha256.Sum256([]byte(reg.Registry))
		volume += "-" + hex.EncodeToString(sum[:6])
	}
	ctr = ctr.WithMountedCache("/root/.npm", c.CacheVolume(volume))
	env := reg.Env()
	for _, k := range sortedKeys(env) {
		ctr = ctr.WithEnvVariable(k, env[k])
	}
	ci := []string{"npm", "ci", "--no-audit", "--no-fund"}
	if reg.Token == nil {
		return ctr.WithExec(ci)
	}
	key, _ := reg.AuthKey() // checked with the flags
	return ctr.
		WithMountedSecret("/run/secrets/botcore-npm-token", reg.Token).
		WithMountedTemp("/run/botcore-npm").
		WithEnvVariable("npm_config_userconfig", "/run/botcore-npm/npmrc").
		WithEnvVariable("BOTCORE_NPM_AUTH_KEY", key).
		WithExec(sh(`printf '%s:_authToken=%s\n' "$BOTCORE_NPM_AUTH_KEY" "$(cat /run/secrets/botcore-npm-token)" >"$npm_config_userconfig"
exec ` + strings.Join(ci, " "))).
		WithoutEnvVariable("npm_config_userconfig").
		WithoutMount("/run/botcore-npm").
		WithoutMount("/run/secrets/botcore-npm-token")
}
