#!/usr/bin/env bash
# Copies binaries and exactly the shared libraries they load (ldd's closure of
# DT_NEEDED) into a staging root for a slim runtime image.
# Usage: scripts/collect-runtime-libs.sh DEST BINARY... 
#   binaries go to DEST/usr/local/bin unless they live in /usr/bin or /bin
#   (then DEST/usr/bin); every library goes to DEST/<the real directory of
#   the path ldd resolved>/<soname>, dereferenced: Debian's alternatives
#   (libblas.so.3 -> /etc/alternatives -> openblas-openmp/libblas.so.3)
#   become one plain file under the name the loader asks for, so the runtime
#   image needs neither the alternatives system nor the packages.
# glibc itself (libc, libm, ld-linux, ...) is not copied: the runtime base
# image has it and it must stay consistent with its own loader.
# COLLECT_SKIP_DIRS=/a:/b: libraries whose real path is under one of these
# directories are not copied (the runtime base image or another COPY provides
# them, e.g. the CUDA runtime image's /usr/local/cuda).
# Writes DEST/usr/local/share/microbatch/runtime-libs.txt: "soname<TAB>source".
# Fails if any library is not found or if libblas.so.3 is not OpenBLAS.
set -euo pipefail
dest=$1; shift
manifest="$dest/usr/local/share/microbatch/runtime-libs.txt"
mkdir -p "$dest/usr/local/bin" "$dest/usr/bin" "$(dirname "$manifest")"
: >"$manifest"
GLIBC='^(libc|libm|libdl|libpthread|librt|libresolv|libutil|libanl|libnsl|libmvec|ld-linux-x86-64|ld-linux-aarch64|libBrokenLocale)\.so'

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
    real_dir=$(readlink -f "$(dirname "$path")")
    skip=0
    IFS=: read -ra skip_dirs <<<"${COLLECT_SKIP_DIRS:-}"
    for d in "${skip_dirs[@]}"; do [[ -n $d && $(readlink -f "$path") == "$d"/* ]] && skip=1; done
    ((skip)) && continue
    target="$dest$real_dir/$soname"
    [[ -e $target ]] && continue
    mkdir -p "$dest$real_dir"
    cp -L "$path" "$target"
    printf '%s\t%s\n' "$soname" "$(readlink -f "$path")" >>"$manifest"
  done < <(awk '$2 == "=>" {print $1, $2, $3, $4}' <<<"$out")
done
sort -o "$manifest" "$manifest"

# LibTorch is ~10x slower on the reference BLAS: insist on OpenBLAS.
if grep -q '^libblas.so.3' "$manifest" && ! grep '^libblas.so.3' "$manifest" | grep -q openblas; then
  echo "collect-runtime-libs: libblas.so.3 resolves to $(grep '^libblas.so.3' "$manifest" | cut -f2), not OpenBLAS" \
    "(install libopenblas0-openmp; update-alternatives --display libblas.so.3-x86_64-linux-gnu)" >&2
  exit 1
fi
echo "collect-runtime-libs: $(wc -l <"$manifest") libraries, $(du -sh "$dest" | cut -f1) in $dest"
