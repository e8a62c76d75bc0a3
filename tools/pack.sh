#!/bin/sh
# make pack: the release tarball, its rockspec and a .src.rock that installs
# with `luarocks install` on a machine with no checkout and no network.
#
#   tools/pack.sh VERSION URL OUTDIR
#
# URL is where the release step will publish the tarball; its last part
# must be lev-redis-VERSION.tar.gz, the name luarocks looks for inside the
# .src.rock. Prints the path of the .src.rock.
set -eu
VERSION=$1 URL=$2 OUT=$3
name=lev-redis-$VERSION
case $VERSION in
  ''|*[!0-9A-Za-z.]*) echo "pack: VERSION must look like 1.2.3, got '$VERSION'" >&2; exit 1;;
esac
case $URL in
  */"$name.tar.gz") ;;
  *) echo "pack: RELEASE_URL must end in /$name.tar.gz, got '$URL'" >&2; exit 1;;
esac
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# What the build and a reader need; not build trees, specs or benchmarks.
mkdir "$stage/$name"
cp -R CMakeLists.txt README.md csrc lua examples "$stage/$name/"
rm -f "$OUT/$name.tar.gz" "$OUT/$name-1.rockspec" "$OUT/$name-1.src.rock"
tar -C "$stage" -czf "$OUT/$name.tar.gz" "$name"
url_sed=$(printf '%s' "$URL" | sed 's/[&|\\]/\\&/g')   # sed-safe
sed -e "s|@VERSION@|$VERSION|g" -e "s|@URL@|$url_sed|g" \
  rockspec/lev-redis-release.rockspec.in >"$OUT/$name-1.rockspec"
(cd "$OUT" && zip -q "$name-1.src.rock" "$name-1.rockspec" "$name.tar.gz")
echo "$OUT/$name-1.src.rock"
