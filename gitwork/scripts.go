package gitwork

// The scripts run in the bottle as `sh -c SCRIPT sh ARG...`: every value
// that comes from a caller (the workspace, the base commit) is a positional
// parameter, never text spliced into the script.
//
// Exit codes the scripts use for what the host must tell apart (1, 2 and
// 128 stay git's and sh's own):
const (
	exitNoGit    = 3 // the workspace has no .git
	exitNoBase   = 4 // the base commit is not in the bottle's repository
	exitNothing  = 5 // fetch: the tip is the base, nothing to bring home
	exitNoCommit = 6 // the repository has no commit yet
	exitBehind   = 7 // fetch: the tip is an ancestor of base; stdout holds it
)

// prelude enters the workspace ($1), checks the base ($2) and makes $t, a
// temporary folder holding r.git: a bare repository (made by hand: git
// init costs a process and copies templates) whose object store has
// the workspace's as an alternate. Exporting GIT_OBJECT_DIRECTORY sends
// every object the scripts write (blobs of uncommitted files, the tree and
// commit of the snapshot) there, so that the agent's .git gains nothing and
// loses nothing: its refs, index and objects stay as the agent left them.
const prelude = `set -e
cd -- "$1" 2>/dev/null || exit 3
[ -e .git ] || exit 3
base=$2
head=$(git rev-parse --verify -q 'HEAD^{commit}') || exit 6
git cat-file -e "$base^{commit}" 2>/dev/null || exit 4
objs=$(git rev-parse --path-format=absolute --git-path objects)
t=$(mktemp -d)
trap 'rm -rf -- "$t"' EXIT
mkdir -p "$t/r.git/objects/info" "$t/r.git/refs"
printf 'ref: refs/heads/tip\n' > "$t/r.git/HEAD"
printf '%s\n' "$objs" > "$t/r.git/objects/info/alternates"
GIT_OBJECT_DIRECTORY=$t/r.git/objects
export GIT_OBJECT_DIRECTORY
`

// snapshot prints the tree of the working tree as `git add -A` sees it
// (untracked files included, ignored ones left out), built in a temporary
// index: a copy of the agent's, so that unchanged files are not hashed
// again, or none when the agent has no index yet.
const snapshot = `snapshot() {
	idx=$(git rev-parse --path-format=absolute --git-path index)
	if [ -f "$idx" ]; then cp -- "$idx" "$t/index"; fi
	GIT_INDEX_FILE=$t/index git add -A
	GIT_INDEX_FILE=$t/index git write-tree
}
`

// headScript prints the workspace's HEAD commit.
const headScript = `cd -- "$1" 2>/dev/null || exit 3
[ -e .git ] || exit 3
git rev-parse --verify -q 'HEAD^{commit}' || exit 6
`

// changesScript prints six sections, each as its length in bytes on a
// line of its own and then its bytes: HEAD, the snapshot's tree, the
// commits base..HEAD, the files that differ between base and the snapshot
// (raw, with their object ids), the untracked files, and
// the diff (empty unless $3 is 1), cut one byte past diffLimit so that the
// host sees it was cut. Plumbing (diff-tree) is used where the agent's
// config could reshape porcelain output (external diff, textconv, prefixes).
const changesScript = prelude + snapshot + `tree=$(snapshot)
printf '%s\n' "$head" > "$t/head"
printf '%s\n' "$tree" > "$t/tree"
git -c log.showSignature=false log -z --reverse --format='%H%x00%s' "$base..$head" -- > "$t/log"
git diff-tree -r -M -z --raw --no-abbrev "$base" "$tree" > "$t/names"
git ls-files -z -o --exclude-standard > "$t/untracked"
: > "$t/diff"
if [ "$3" = 1 ]; then
	git diff-tree -r -p -M --src-prefix=a/ --dst-prefix=b/ "$base" "$tree" | head -c "$4" > "$t/diff"
fi
for f in head tree log names untracked diff; do
	wc -c < "$t/$f"
	cat -- "$t/$f"
done
`

// fetchScript writes to stdout a bundle of base..TIP whose one ref is
// refs/bottle/tip. TIP is HEAD, or with $3 = 1 and a working tree that
// differs from HEAD, a commit on top of HEAD holding the snapshot. That
// commit's author, committer and date are fixed (the date is HEAD's), so
// that fetching the same work twice makes the same commit. The ref lives in
// the temporary repository: `git bundle create` needs a ref name, and the
// agent's refs are not ours to write.
const fetchScript = prelude + snapshot + `tip=$head
if [ "$3" = 1 ]; then
	tree=$(snapshot)
	if [ "$tree" != "$(git rev-parse "$head^{tree}")" ]; then
		d=$(git show -s --format=%cd --date=raw "$head")
		tip=$(GIT_AUTHOR_NAME=bottle GIT_AUTHOR_EMAIL=bottle@localhost GIT_AUTHOR_DATE=$d \
			GIT_COMMITTER_NAME=bottle GIT_COMMITTER_EMAIL=bottle@localhost GIT_COMMITTER_DATE=$d \
			git commit-tree --no-gpg-sign -p "$head" -m "` + uncommittedSubject + `" "$tree")
	fi
fi
[ "$tip" != "$base" ] || exit 5
if git merge-base --is-ancestor "$tip" "$base"; then
	printf '%s\n' "$tip"
	exit 7
fi
git --git-dir="$t/r.git" update-ref refs/bottle/tip "$tip"
git --git-dir="$t/r.git" bundle create -q - refs/bottle/tip "^$base"
`
