#!/usr/bin/env bash
# test_package.sh BUILD_DIR - the install layout and the Debian package, from the built tree:
#   1. cmake --install into a scratch prefix: binaries, docs, ops files, etc/herald/herald.conf,
#      the unit; a second install keeps an edited herald.conf and adds herald.conf.dist;
#   2. cpack builds herald_<version>_amd64.deb (into a scratch directory); dpkg-deb shows the
#      files, the control fields, the conffile and the maintainer scripts;
#   3. the extracted herald --check-config accepts the packaged /etc/herald/herald.conf as shipped;
#   4. systemd-analyze verify accepts the packaged unit, and its hardening scores "OK" or better.
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_package: $*" >&2; exit 1; }
need() { grep -qxF -- "$1" "$2" || fail "$3: missing $1"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || fail "no project version in $build/CMakeCache.txt"

# ---- 1. cmake --install ---------------------------------------------------------------------
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
(cd "$prefix" && find . -type f | sort) >"$tmp/installed"
for f in ./bin/herald ./bin/heraldctl ./etc/herald/herald.conf ./lib/systemd/system/herald.service \
         ./share/doc/herald/README.md ./share/doc/herald/operations.md ./share/doc/herald/DESIGN.md \
         ./share/herald/prometheus-rules.yml ./share/herald/grafana-dashboard.json; do
    need "$f" "$tmp/installed" "cmake --install"
done
grep -qxF "ExecStart=$prefix/bin/herald --config $prefix/etc/herald/herald.conf" \
    "$prefix/lib/systemd/system/herald.service" || fail "the installed unit does not run $prefix/bin/herald"
echo "# edited by the operator" >>"$prefix/etc/herald/herald.conf"
cmake --install "$build" --prefix "$prefix" >"$tmp/install2.log"
tail -n1 "$prefix/etc/herald/herald.conf" | grep -qx "# edited by the operator" \
    || fail "a second cmake --install overwrote an edited herald.conf"
[ -f "$prefix/etc/herald/herald.conf.dist" ] || fail "a second cmake --install did not add herald.conf.dist"

# ---- 2. the package ---------------------------------------------------------------------------
cpack --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 \
    || { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
deb=$tmp/pkg/herald_${version}_amd64.deb
[ -f "$deb" ] || fail "cpack did not make $(basename "$deb"): $(ls "$tmp/pkg")"
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' >"$tmp/contents"
for f in "-rwxr-xr-x root/root ./usr/bin/herald" "-rwxr-xr-x root/root ./usr/bin/heraldctl" \
         "-rw-r----- root/root ./etc/herald/herald.conf" \
         "-rw-r--r-- root/root ./lib/systemd/system/herald.service" \
         "-rw-r--r-- root/root ./usr/share/doc/herald/operations.md" \
         "-rw-r--r-- root/root ./usr/share/doc/herald/README.md" \
         "-rw-r--r-- root/root ./usr/share/herald/prometheus-rules.yml" \
         "-rw-r--r-- root/root ./usr/share/herald/grafana-dashboard.json"; do
    need "$f" "$tmp/contents" "dpkg-deb -c"
done
if grep -v -e ' \./usr/' -e ' \./etc/herald/' -e ' \./etc/$' -e ' \./lib/$' -e ' \./lib/systemd/' \
        "$tmp/contents"; then
    fail "the package installs outside /usr, /etc/herald and /lib/systemd (above)"
fi
dpkg-deb -f "$deb" Package Version Architecture Depends >"$tmp/control"
need "Package: herald" "$tmp/control" "control"
need "Version: $version" "$tmp/control" "control"
need "Architecture: amd64" "$tmp/control" "control"
for dep in adduser procps libuv1 libhiredis0.14 librdkafka1 libmicrohttpd12 libcurl4; do
    grep -q "^Depends:.*\b$dep\b" "$tmp/control" || fail "Depends lacks $dep: $(grep Depends "$tmp/control")"
done
dpkg-deb -e "$deb" "$tmp/DEBIAN"
[ "$(cat "$tmp/DEBIAN/conffiles")" = /etc/herald/herald.conf ] \
    || fail "conffiles is not /etc/herald/herald.conf: $(cat "$tmp/DEBIAN/conffiles")"
for s in postinst prerm postrm; do
    [ -x "$tmp/DEBIAN/$s" ] || fail "no executable $s"
    sh -n "$tmp/DEBIAN/$s" || fail "$s is not valid sh"
done

# ---- 3. the packaged configuration, checked by the packaged herald -----------------------------
root=$tmp/root
dpkg-deb -x "$deb" "$root"
[ "$("$root/usr/bin/herald" --version)" = "herald $version" ] || fail "herald --version is not $version"
# env -i: no HERALD_* variable of the test environment may help the shipped file pass
env -i "$root/usr/bin/herald" --check-config --config "$root/etc/herald/herald.conf" >"$tmp/check" \
    || fail "herald --check-config refused the packaged herald.conf"
need "# configuration OK: $root/etc/herald/herald.conf" "$tmp/check" "--check-config"
need "runtime.dir = /run/herald" "$tmp/check" "--check-config"
env -i "$root/usr/bin/heraldctl" --help >/dev/null || fail "heraldctl --help failed"

# ---- 4. the unit ------------------------------------------------------------------------------
# systemd-analyze verify loads the unit as systemd would and fails when ExecStart= names a
# missing program. The package is extracted, not installed, so /usr/bin/herald does not exist
# here; --root=<extracted tree> would move every path there, including /bin/kill and the
# systemd targets the unit orders itself after. So the unit is verified as shipped except for
# its one herald path, pointed into the extracted tree (the sed must change exactly that line).
unit=$root/lib/systemd/system/herald.service
mkdir "$tmp/unit"
sed "s|/usr/bin/herald |$root/usr/bin/herald |" "$unit" >"$tmp/unit/herald.service"
[ "$(diff "$unit" "$tmp/unit/herald.service" | grep -c '^>')" = 1 ] \
    || fail "the unit's ExecStart is not /usr/bin/herald"
for key in "User=herald" "NoNewPrivileges=yes" "ProtectSystem=strict" "PrivateTmp=yes" \
           "RuntimeDirectory=herald" "StateDirectory=herald" "Restart=on-failure" \
           'ExecReload=/bin/kill -HUP $MAINPID'; do
    need "$key" "$unit" "herald.service"
done
systemd-analyze verify --man=no "$tmp/unit/herald.service" 2>"$tmp/verify" \
    || { cat "$tmp/verify" >&2; fail "systemd-analyze verify refused the unit"; }
[ ! -s "$tmp/verify" ] || { cat "$tmp/verify" >&2; fail "systemd-analyze verify warned"; }
# exposure 0 (locked down) to 10 (unprotected); 2.0 and below is rated "OK"
systemd-analyze security --offline=true --threshold=20 "$tmp/unit/herald.service" >"$tmp/security" 2>&1 \
    || { tail -n 20 "$tmp/security" >&2; fail "the unit's exposure is above 2.0"; }
echo "test_package: $(basename "$deb") ok; $(tail -n1 "$tmp/security")"
