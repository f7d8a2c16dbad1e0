#!/usr/bin/env bash
# deploy/Dockerfile, checked offline (no Docker engine here, and no Dockerfile linter in Debian 12):
#  - parsed (tests/e2e/deploy_check.py dockerfile): multi-stage, every stage on debian:12, the
#    runtime stage copies both programs from the build stage, runs as a non-root USER and installs
#    no -dev package or compiler; every apt-get install uses --no-install-recommends;
#  - every package it installs exists in Debian 12 (apt-cache policy has a candidate);
#  - the build stage has the packages providing every pkg-config module CMake requires, protoc-c and
#    the toolchain, and the cmake targets it builds exist;
#  - the runtime stage's packages are exactly the packages of the libraries the built programs link
#    directly (readelf NEEDED -> ldd path -> dpkg -S), libc6 aside, and every library ldd lists
#    comes from those packages' dependency closure (apt-cache depends --recurse);
#  - shellcheck (when installed) passes on every RUN command.
source "$(dirname "$0")/lib.sh"
DOCKERFILE="$SRC/deploy/Dockerfile"
mkdir -p "$WORK/df"
$PY "$SRC/tests/e2e/deploy_check.py" dockerfile "$DOCKERFILE" "$WORK/df" || fail "Dockerfile structure"
mapfile -t STAGES < "$WORK/df/stages"
mapfile -t BUILD_PKGS < "$WORK/df/${STAGES[0]}.packages"
mapfile -t RUNTIME_PKGS < "$WORK/df/${STAGES[-1]}.packages"

# One apt-cache call for all packages (each call reads the whole cache: ~2 s).
apt-cache policy "${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" > "$WORK/policy" 2>/dev/null || true
for p in "${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}"; do
  c=$(awk -v p="$p:" '$0 == p { f = 1; next } /^[^ ]/ { f = 0 } f && /Candidate:/ { print $2; exit }' "$WORK/policy")
  [[ -n "$c" && "$c" != "(none)" ]] ||
    fail "package $p has no candidate in apt-cache policy: not in the Debian archive, or lists missing (apt-get update)"
done
pass "all ${#BUILD_PKGS[@]} build + ${#RUNTIME_PKGS[@]} runtime packages exist in Debian $(cut -d. -f1 /etc/debian_version)"

# Build packages: whatever provides the pkg-config modules CMake requires, and protoc-c.
mapfile -t MODULES < <(cat "$SRC/CMakeLists.txt" "$SRC/tests/CMakeLists.txt" |
  sed -n 's/.*pkg_check_modules([A-Z_]* REQUIRED IMPORTED_TARGET \([a-z0-9_-]*\)).*/\1/p')
[[ ${#MODULES[@]} -ge 6 ]] || fail "found only ${#MODULES[@]} pkg_check_modules in CMakeLists.txt"
protoc_pkg=$(dpkg -S "$(readlink -f "$(command -v protoc-c)")" | awk -F: 'NR == 1 { print $1 }')
NEEDS=(cmake make gcc pkg-config "$protoc_pkg")
for m in "${MODULES[@]}"; do
  pc=$(readlink -f "$(pkg-config --variable=pcfiledir "$m")/$m.pc")
  p=$(dpkg -S "$pc" 2>/dev/null | awk -F: 'NR == 1 { print $1 }') || true
  [[ -n "$p" ]] || fail "pkg-config module $m ($pc) belongs to no Debian package"
  NEEDS+=("$p")
done
# A needed package is installed by the build stage itself or as a direct dependency of one there
# (libopenblas-dev pulls the libopenblas-pthread-dev that holds openblas.pc).
apt-cache depends --no-recommends --no-suggests "${BUILD_PKGS[@]}" 2>/dev/null |
  sed -n 's/^ *|\{0,1\}Depends: //p' > "$WORK/build-depends"
printf '%s\n' "${BUILD_PKGS[@]}" >> "$WORK/build-depends"
for p in "${NEEDS[@]}"; do
  grep -qx -- "$p" "$WORK/build-depends" ||
    fail "build stage lacks $p (needed by the CMake build)"
done
cmake --build "$BUILD" --target help > "$WORK/targets"
for t in teacher_worker student_trainer; do
  grep -q "\.\.\. $t\$" "$WORK/targets" || fail "no cmake target $t"
done
pass "build stage has the packages of CMake's modules (${MODULES[*]}), protoc-c and the toolchain"

# Every library ldd resolves, by its path and by its real path (usrmerge and alternatives), mapped to
# packages with a single dpkg -S call (each call reads the whole file database).
declare -A DIRECT ALL SONAME_PATHS
for bin in "$TW" "$ST"; do
  readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' > "$WORK/needed"
  while read -r name _ path _; do
    [[ "$path" == /* ]] || continue
    SONAME_PATHS[$name]="$path $(readlink -f "$path")"
    if grep -qx -- "$name" "$WORK/needed"; then DIRECT[$name]=1; fi
  done < <(ldd "$bin")
done
# shellcheck disable=SC2086,SC2048  # each value is "path realpath": split on purpose
dpkg -S ${SONAME_PATHS[*]} > "$WORK/dpkg-S" 2>/dev/null || true
pkg_of_name() { # soname -> package
  local f pkg
  for f in ${SONAME_PATHS[$1]}; do
    pkg=$(awk -v f="$f" -F': ' '$2 == f { split($1, a, ":"); print a[1]; exit }' "$WORK/dpkg-S")
    if [[ -n "$pkg" ]]; then echo "$pkg"; return 0; fi
  done
}
declare -A DIRECT_PKGS
for name in "${!SONAME_PATHS[@]}"; do
  pkg=$(pkg_of_name "$name")
  [[ -n "$pkg" ]] || fail "${SONAME_PATHS[$name]} ($name) belongs to no Debian package"
  ALL[$pkg]=1
  [[ -z "${DIRECT[$name]:-}" ]] || DIRECT_PKGS[$pkg]=1
done
# Sanitizer runtimes are linked only in the ASan+UBSan build, never in the image.
for san in libasan8 libubsan1; do unset "DIRECT_PKGS[$san]" "ALL[$san]"; done
unset "DIRECT_PKGS[libc6]"
want=$(printf '%s\n' "${!DIRECT_PKGS[@]}" | sort | tr '\n' ' ')
have=$(printf '%s\n' "${RUNTIME_PKGS[@]}" | sort | tr '\n' ' ')
[[ "$want" == "$have" ]] || fail "runtime stage installs [$have] but the programs link [$want] (+ libc6)"
pass "runtime packages = packages of the directly linked libraries: $have"

closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "${RUNTIME_PKGS[@]}" libc6 | grep -v '^ ' | sort -u)
for pkg in "${!ALL[@]}"; do
  grep -qx -- "$pkg" <<<"$closure" || fail "ldd lists a library of $pkg, which the runtime packages do not pull in"
done
pass "all ${#ALL[@]} packages behind ldd's libraries come with the runtime packages' dependencies"

if command -v shellcheck >/dev/null; then
  for f in "$WORK"/df/run-*.sh; do shellcheck -s sh "$f" || fail "shellcheck on a RUN of the Dockerfile: $(cat "$f")"; done
  pass "shellcheck: every RUN command"
else
  echo "note: shellcheck not installed: RUN commands not linted"
fi
echo "Dockerfile checks passed"
