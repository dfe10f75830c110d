#!/usr/bin/env bash
# Fetches the glibc a Debian release ships (package libc6, amd64) into a folder the oracle can run under, so
# that the version tests and MALLOCSCOPE_LIBC can use a real build without building glibc from source.
#   scripts/debian-glibc.sh SUITE DEST     e.g. scripts/debian-glibc.sh trixie .glibc/2.41
# Debian 13 "trixie" ships 2.41 (as its users run it, with Debian's patches); bookworm's 2.36 is this
# machine's own. apt fetches and checks the package against Debian's signed index, with a private list and
# cache under DEST's parent, so the system's own apt sources are not touched.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: scripts/debian-glibc.sh SUITE DEST   (e.g. trixie .glibc/2.41)" >&2
  exit 2
fi
suite=$1
dest=$2
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "debian-glibc: no Debian archive keyring at $keyring (package debian-archive-keyring)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/pkg"
cat > "$work/etc/sources.list" <<EOF
deb [arch=amd64 signed-by=$keyring] http://deb.debian.org/debian $suite main
EOF
apt_opts=(
  -o "Dir::Etc::sourcelist=$work/etc/sources.list" -o "Dir::Etc::sourceparts=-"
  -o "Dir::Etc::preferencesparts=$work/etc/preferences.d" -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root" -o "Acquire::Languages=none"
)
echo "debian-glibc: apt-get update for Debian $suite (a private list)"
apt-get "${apt_opts[@]}" -qq update
# The candidate of the private list (the installed libc6 is also known to apt, so `show` alone could name it).
version=$(apt-cache "${apt_opts[@]}" policy libc6 | awk '/Candidate:/ { print $2; exit }')
echo "debian-glibc: libc6 $version from Debian $suite"
(cd "$work/pkg" && apt-get "${apt_opts[@]}" -qq download "libc6=$version")
dpkg-deb -x "$work"/pkg/libc6_*.deb "$work/root"
# Merged /usr (trixie on) keeps the libraries in usr/lib; older suites in lib.
libdir=$work/root/usr/lib/x86_64-linux-gnu
[ -x "$libdir/ld-linux-x86-64.so.2" ] || libdir=$work/root/lib/x86_64-linux-gnu
[ -x "$libdir/ld-linux-x86-64.so.2" ] || { echo "debian-glibc: no ld-linux-x86-64.so.2 in libc6 $version" >&2; exit 1; }
mkdir -p "$dest"
cp -a "$libdir/." "$dest/"
echo "debian-glibc: $dest holds glibc $("$dest/ld-linux-x86-64.so.2" --version | head -1 | sed -e "s/.*version //" -e "s/\.$//")"
