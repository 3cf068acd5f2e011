#!/usr/bin/env bash
# Reproduces the vendored ReDoc bundle in internal/httpapi/assets/redoc from the npm
# registry. To move to another release, change REDOC_VERSION and
# REDOC_INTEGRITY (from `npm view redoc@<version> dist.integrity`) and rerun.
set -euo pipefail

REDOC_VERSION=2.5.4
REDOC_INTEGRITY='sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ=='

dest="$(cd "$(dirname "${BASH_SOURCE[0]}")/../internal/httpapi/assets/redoc" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "redoc@${REDOC_VERSION}" >/dev/null)
tarball="$work/redoc-${REDOC_VERSION}.tgz"

got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [[ "$got" != "$REDOC_INTEGRITY" ]]; then
	echo "update-redoc: integrity mismatch for redoc@${REDOC_VERSION}: got $got" >&2
	exit 1
fi

tar -xzf "$tarball" -C "$work"
cp "$work/package/bundles/redoc.standalone.js" "$dest/redoc.standalone.js"
cp "$work/package/bundles/redoc.standalone.js.LICENSE.txt" "$dest/redoc.standalone.js.LICENSE.txt"
cp "$work/package/LICENSE" "$dest/LICENSE"
echo "$REDOC_VERSION" >"$dest/VERSION"
echo "update-redoc: vendored redoc ${REDOC_VERSION} into $dest"
