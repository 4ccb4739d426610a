package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// epochFromSource is --source-date-epoch's default: read it from the source.
const epochFromSource = -1

// headScript prints "commit SECONDS SHA" for the checkout's HEAD, or, when
// /git holds no usable repository (a tarball, a worktree whose .git points
// elsewhere), "files SECONDS" for the newest file in /src and why git could
// not answer.
const headScript = `
if out=$(git -c safe.directory='*' --git-dir=/git/.git log -1 --format='%ct %H' HEAD 2>/tmp/git.err); then
  echo "commit $out"; exit 0
fi
t=$(find /src -type f -printf '%T@\n' | sort -n | tail -n 1)
echo "files ${t%.*} $(head -c 200 /tmp/git.err | tr '\n' ' ')"
`

// sourceHead is what the source says of itself: HEAD's commit and its time,
// or, without a git checkout, its newest file's time and why.
type sourceHead struct {
	commit string // empty without a git checkout
	epoch  int
	why    string // why there is no commit
}

func (m *BotCore) head(ctx context.Context) (sourceHead, error) {
	out, err := dag.Container().From(m.GoImage).
		WithMountedDirectory("/git", m.Git).
		WithMountedDirectory("/src", m.Source).
		WithExec([]string{"sh", "-c", headScript}).
		Stdout(ctx)
	if err != nil {
		return sourceHead{}, fmt.Errorf("reading the source's commit: %w", err)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		return sourceHead{}, fmt.Errorf("the source has neither a git commit nor files to date it by")
	}
	secs, err := strconv.Atoi(f[1])
	if err != nil || secs < 0 {
		return sourceHead{}, fmt.Errorf("the source's date %q is not seconds since 1970", f[1])
	}
	if f[0] == "commit" && len(f) == 3 {
		return sourceHead{commit: f[2], epoch: secs}, nil
	}
	return sourceHead{epoch: secs, why: strings.Join(f[2:], " ")}, nil
}

// sourceDate is SOURCE_DATE_EPOCH when none is given: the commit time of
// the checkout's HEAD, which every clone of a commit agrees on; without a
// git checkout, the newest file time in the source (what a tarball of it
// keeps). It never falls back to 1970: an image dated 1970 looks broken to
// every registry UI and retention rule.
func (m *BotCore) sourceDate(ctx context.Context) (int, error) {
	h, err := m.head(ctx)
	if err != nil {
		return 0, fmt.Errorf("--source-date-epoch not given, and %w; pass --source-date-epoch", err)
	}
	when := time.Unix(int64(h.epoch), 0).UTC().Format(time.RFC3339)
	if h.commit != "" {
		fmt.Printf("source date: %s (%d), the commit time of HEAD\n", when, h.epoch)
	} else {
		fmt.Printf("source date: %s (%d), the newest file time in the source: no git commit to read (%s); pass --git or --source-date-epoch for the commit time\n",
			when, h.epoch, h.why)
	}
	return h.epoch, nil
}
