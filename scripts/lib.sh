# Helpers the scripts share; sourced, not run. A script sets PROG (its
# name in messages) and USAGE_FILE (the file whose "#   scripts/..."
# comment lines are its usage) before sourcing this.

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	sed -n '/^#   scripts/s/^#   //p' "$USAGE_FILE" >&2
	exit 2
}

# need CMD WHY: fails unless CMD is on PATH.
need() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"
}
