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

// sourceDateScript prints "commit SECONDS" for the checkout's HEAD, or,
// when /git holds no usable repository (a tarball, a worktree whose .git
// points elsewhere), "files SECONDS" for the newest file in /src and why
// git could not answer.
const sourceDateScript = `
if t=$(git -c safe.directory='*' --git-dir=/git/.git log -1 --format=%ct HEAD 2>/tmp/git.err); then
  echo "commit $t"; exit 0
fi
t=$(find /src -type f -printf '%T@\n' | sort -n | tail -n 1)
echo "files ${t%.*} $(head -c 200 /tmp/git.err | tr '\n' ' ')"
`

// sourceDate is SOURCE_DATE_EPOCH when none is given: the commit time of
// the checkout's HEAD, which every clone of a commit agrees on; without a
// git checkout, the newest file time in the source (what a tarball of it
// keeps). It never falls back to 1970: an image dated 1970 looks broken to
// every registry UI and retention rule.
func (m *BotCore) sourceDate(ctx context.Context) (int, error) {
	out, err := dag.Container().From(m.GoImage).
		WithMountedDirectory("/git", m.Git).
		WithMountedDirectory("/src", m.Source).
		WithExec([]string{"sh", "-c", sourceDateScript}).
		Stdout(ctx)
	if err != nil {
		return 0, fmt.Errorf("--source-date-epoch not given, and reading the commit time failed: %w", err)
	}
	fields := strings.Fields(out)
	if len(fields) < 2 {
		return 0, fmt.Errorf("--source-date-epoch not given, and the source has neither a git commit nor files to date it by; pass --source-date-epoch")
	}
	secs, err := strconv.Atoi(fields[1])
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("--source-date-epoch not given, and the source's date %q is not seconds since 1970", fields[1])
	}
	when := time.Unix(int64(secs), 0).UTC().Format(time.RFC3339)
	if fields[0] == "commit" {
		fmt.Printf("source date: %s (%d), the commit time of HEAD\n", when, secs)
	} else {
		fmt.Printf("source date: %s (%d), the newest file time in the source: no git commit to read (%s); pass --git or --source-date-epoch for the commit time\n",
			when, secs, strings.Join(fields[2:], " "))
	}
	return secs, nil
}
