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
	built := withNextKeys(installed.
		WithDirectory("/src", s.Source, dagger.ContainerWithDirectoryOpts{Exclude: []string{"node_modules", ".next"}}), s).
		WithNewFile(nextBuildIDPath, nextBuildID).
		// public/ is optional in Next.js; the layout below always copies it.
		WithExec(sh(nextKeysScript(s) + `export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require ` + nextBuildIDPath + `"
npm run build
mkdir -p public
[ -f .next/standalone/server.js ] || {
  echo "service ` + s.Service.Name + `: next build made no standalone server (.next/standalone/server.js): next.config sets output to something else (e.g. 'export'); remove it or set output: 'standalone'" >&2
  exit 1
}
` + sortManifests)).
		Directory("/src")
	// Lay the app out as Next's standalone docs describe: server.js with its
	// traced node_modules, plus the static assets and public files beside it.
	return c.Directory().
		WithDirectory("/", built.Directory(".next/standalone")).
		WithDirectory(".next/static", built.Directory(".next/static")).
		WithDirectory("public", built.Directory("public")).
		WithTimestamps(s.Epoch)
}

// sortManifests writes Next's route manifests with their routes in
// order: next build lists them in the order its compilations finish, which
// varies from one build to the next (pages-manifest.json had /_app and
// /_error swapped between two builds of one commit). They map routes to
// files, so the order means nothing to Next.
const sortManifests = `node -e '
const fs = require("fs");
for (const f of process.argv.slice(1)) {
  if (!fs.existsSync(f)) continue;
  const m = JSON.parse(fs.readFileSync(f, "utf8"));
  fs.writeFileSync(f, JSON.stringify(Object.fromEntries(Object.keys(m).sort().map((k) => [k, m[k]])), null, 2));
}
' .next/server/pages-manifest.json .next/server/app-paths-manifest.json \
  .next/standalone/.next/server/pages-manifest.json .next/standalone/.next/server/app-paths-manifest.json
`

// nextBuildID is preloaded into next build. An app whose next.config has
// no generateBuildId gets a random build ID from Next (nanoid), written
// into BUILD_ID, the manifests and every prerendered page, so no two builds
// of one commit match. This one hands Next's fallback an ID drawn from the
// app's files instead: a rebuild gets the same one, a change to the app a
// new one, which is what the ID is for (the browser's cue to fetch the new
// build's assets). An app's own generateBuildId still wins: Next calls the
// fallback only when it returns null.
//
// Next requires ./generate-build-id from its build; the preload replaces
// that module's exports in require's cache before Next asks for it. A Next
// without that file builds as before, with a random ID.
const nextBuildIDPath = "/usr/local/lib/botcore/next-build-id.cjs"

const nextBuildID = `const crypto = require("crypto"), fs = require("fs"), path = require("path");
let file;
try {
  file = require.resolve("next/dist/build/generate-build-id", { paths: [process.cwd()] });
  require(file);
} catch {
  return;
}
const next = require.cache[file].exports;
// The ID's letters leave out a and d: Next draws again while an ID holds "ad"
// (ad blockers), and would loop for ever on an ID that always does.
const letters = "bcefghijkmnpqrstuvwxyz0123456789";
function fromFiles() {
  const root = process.cwd(), sum = crypto.createHash("sha256");
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
      const p = path.join(dir, e.name), rel = path.relative(root, p);
      if (e.isDirectory()) {
        if (!["node_modules", ".next", ".git"].includes(e.name)) walk(p);
      } else if (e.isSymbolicLink()) {
        sum.update("link " + rel + "\0" + fs.readlinkSync(p) + "\n");
      } else if (e.isFile()) {
        sum.update("file " + rel + "\0" + crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex") + "\n");
      }
    }
  };
  walk(root);
  const id = Array.from(sum.digest().subarray(0, 21), (b) => letters[b % letters.length]).join("");
  console.error("next build id: " + id + ", from the app's files (next.config has no generateBuildId)");
  return id;
}
require.cache[file].exports = {
  __esModule: true,
  generateBuildId: (generate, fallback) => next.generateBuildId(generate, fromFiles),
};
`

// Next.js draws three random keys at every build and writes them into the
// output (.next/prerender-manifest.json and the server reference manifest):
// the preview mode's id, signing and encryption keys and the server
// actions' encryption key, so two builds of one commit never match. With a
// build key, each is an HMAC of it (per service and purpose), given to Next
// the ways it reads them: the preview keys from .next/cache/.previewinfo,
// the actions key from NEXT_SERVER_ACTIONS_ENCRYPTION_KEY. They stay
// secret to whoever does not hold the build key, and a rebuild gets the
// same ones.
func withNextKeys(ctr *dagger.Container, s Spec) *dagger.Container {
	if s.BuildKey == nil {
		return ctr
	}
	// The id, not the secret, is what the build step's cache key sees: a
	// new build key builds again.
	return ctr.WithEnvVariable("BOTCORE_BUILD_KEY_ID", s.BuildKeyID).
		WithSecretVariable("BOTCORE_BUILD_KEY", s.BuildKey)
}

func nextKeysScript(s Spec) string {
	if s.BuildKey == nil {
		return ""
	}
	return `eval "$(node -e '
const c = require("crypto"), fs = require("fs");
const h = (p) => c.createHmac("sha256", process.env.BOTCORE_BUILD_KEY).update(process.argv[1] + "/" + p).digest();
fs.mkdirSync(".next/cache", { recursive: true });
fs.writeFileSync(".next/cache/.previewinfo", JSON.stringify({
  previewModeId: h("preview-mode-id").toString("hex").slice(0, 32),
  previewModeSigningKey: h("preview-mode-signing-key").toString("hex"),
  previewModeEncryptionKey: h("preview-mode-encryption-key").toString("hex"),
  expireAt: 4102444800000,
}));
console.log("export NEXT_SERVER_ACTIONS_ENCRYPTION_KEY=" + h("server-actions-encryption-key").toString("base64"));
' ` + s.Service.Name + `)"
unset BOTCORE_BUILD_KEY
`
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
