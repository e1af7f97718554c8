#!/usr/bin/env bash
# Copies binaries and exactly the shared libraries they load (ldd's closure of
# DT_NEEDED) into a staging root for a slim runtime image.
# Usage: [STUB_LIBS_RE=REGEX] [COLLECT_SKIP_DIRS=/a:/b] scripts/collect-runtime-libs.sh DEST BINARY...
#   Binaries go to DEST/usr/local/bin unless they live in /usr/bin or /bin
#   (then DEST/usr/bin); every library goes to DEST/<the real directory of
#   the path ldd resolved>/<soname>, dereferenced: Debian's alternatives
#   (libblas.so.3 -> /etc/alternatives -> openblas-openmp/libblas.so.3)
#   become one plain file under the name the loader asks for, so the runtime
#   image needs neither the alternatives system nor the packages.
# glibc itself (libc, libm, ld-linux, ...) is not copied: the runtime base
# image has it and it must stay consistent with its own loader.
# COLLECT_SKIP_DIRS: libraries whose real path is under one of these
# directories are not copied (the runtime base image or another COPY provides
# them, e.g. the CUDA runtime image's /usr/local/cuda).
# STUB_LIBS_RE: sonames matching this regex are replaced by empty libraries
# with the same soname. For DT_NEEDED entries that provide no symbol at all
# (Debian's libtorch1.13 is linked against OpenCV, FFmpeg, ZeroMQ, LevelDB,
# LMDB and uses none of them: with them comes Qt, GDAL, ICU, codecs... ~290
# MB). Proven, not assumed: every binary must start with LD_BIND_NOW=1 (every
# symbol of every loaded object resolved at load, else "symbol lookup error")
# with the stubs in place of the real libraries, or this script fails.
# Writes DEST/usr/local/share/microbatch/runtime-libs.txt: "soname<TAB>source".
# Fails if any library is not found or if libblas.so.3 is not OpenBLAS.
set -euo pipefail
dest=$1; shift
manifest="$dest/usr/local/share/microbatch/runtime-libs.txt"
mkdir -p "$dest/usr/local/bin" "$dest/usr/bin" "$(dirname "$manifest")"
: >"$manifest"
GLIBC='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libmvec|ld-linux-x86-64|ld-linux-aarch64|libBrokenLocale)\.so'
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

# Stubs: empty libraries named like the unused DT_NEEDED entries.
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
if [[ -n ${STUB_LIBS_RE:-} ]]; then
  for bin in "$@"; do
    ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
  done | sort -u | while read -r lib; do
    readelf -d "$lib" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'
  done | sort -u | { grep -E "$STUB_LIBS_RE" || true; } | while read -r so; do
    echo | cc -x c -shared -o "$stubs/$so" -Wl,-soname,"$so" -
  done
  for bin in "$@"; do
    # --help's exit status varies (absl exits 1); the loader's failures are
    # exit 127 with "symbol lookup error" / "error while loading".
    rc=0
    err=$(LD_LIBRARY_PATH="$stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LD_BIND_NOW=1 "$bin" --help 2>&1 >/dev/null) || rc=$?
    if ((rc == 127)) || grep -qE 'symbol lookup error|error while loading shared libraries|undefined symbol' <<<"$err"; then
      echo "collect-runtime-libs: $bin does not start with stubs for $(ls "$stubs" | tr '\n' ' '): $(grep -m3 -iE 'symbol|error' <<<"$err")" >&2
      echo "collect-runtime-libs: narrow STUB_LIBS_RE" >&2
      exit 1
    fi
  done
fi
export LD_LIBRARY_PATH="$stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

for bin in "$@"; do
  case "$(dirname "$(readlink -f "$bin")")" in
    /usr/bin | /bin) install -m 0755 "$bin" "$dest/usr/bin/" ;;
    *) install -m 0755 "$bin" "$dest/usr/local/bin/" ;;
  esac
  out=$(ldd "$bin")
  if grep -q 'not found' <<<"$out"; then
    echo "collect-runtime-libs: $bin: $(grep 'not found' <<<"$out" | tr '\n' ' ')" >&2
    exit 1
  fi
  while read -r soname _ path _; do
    [[ $path == /* ]] || continue
    [[ $soname =~ $GLIBC ]] && continue
    skip=0
    IFS=: read -ra skip_dirs <<<"${COLLECT_SKIP_DIRS:-}"
    for d in "${skip_dirs[@]}"; do
      [[ -n $d ]] || continue
      [[ $(readlink -f "$path") == "$(readlink -f "$d")"/* || $path == "$d"/* ]] && skip=1
    done
    ((skip)) && continue
    if [[ $path == "$stubs"/* ]]; then
      real_dir=/usr/lib/$multiarch
      source="stub (unused DT_NEEDED, scripts/collect-runtime-libs.sh)"
    else
      real_dir=$(readlink -f "$(dirname "$path")")
      source=$(readlink -f "$path")
    fi
    target="$dest$real_dir/$soname"
    [[ -e $target ]] && continue
    mkdir -p "$dest$real_dir"
    cp -L "$path" "$target"
    printf '%s\t%s\n' "$soname" "$source" >>"$manifest"
  done < <(awk '$2 == "=>" {print $1, $2, $3, $4}' <<<"$out")
done
sort -o "$manifest" "$manifest"

# LibTorch is ~10x slower on the reference BLAS: insist on OpenBLAS.
if grep -q '^libblas.so.3' "$manifest" && ! grep '^libblas.so.3' "$manifest" | grep -q openblas; then
  echo "collect-runtime-libs: libblas.so.3 resolves to $(grep '^libblas.so.3' "$manifest" | cut -f2), not OpenBLAS" \
    "(install libopenblas0-openmp; update-alternatives --display libblas.so.3-x86_64-linux-gnu)" >&2
  exit 1
fi
echo "collect-runtime-libs: $(grep -vc stub "$manifest") libraries, $(grep -c stub "$manifest" || true) stubs, $(du -sh "$dest" | cut -f1) in $dest"
