#!/usr/bin/env bash
# Removes build outputs from the shared cargo target directory that nothing has read for
# HORSESTREAM_PRUNE_DAYS days (default 3): every fresh clone (CI) compiles the workspace's own
# crates anew under new hashes, and those outputs are never read again. Cargo rebuilds
# anything it still needs. The filesystem's relatime updates a file's access time at least
# once a day while it is read, so files in use are never old.
set -euo pipefail
target="${CARGO_TARGET_DIR:?CARGO_TARGET_DIR is not set}"
days="${HORSESTREAM_PRUNE_DAYS:-3}"
[ -d "$target" ] || exit 0
before=$(du -sk "$target" | cut -f1)
for profile in debug release; do
  dir="$target/$profile"
  [ -d "$dir" ] || continue
  for sub in deps examples; do
    [ -d "$dir/$sub" ] && find "$dir/$sub" -maxdepth 1 -type f -atime +"$days" -delete
  done
  # Incremental caches are off (CARGO_INCREMENTAL=0); any left from before go.
  [ -d "$dir/incremental" ] && find "$dir/incremental" -mindepth 1 -maxdepth 1 -atime +"$days" -exec rm -rf {} +
done
# Each clone at a new path builds the workspace's own crates and test binaries under new
# hashes (~15 GB with debug info); when the disk runs low, the ones nothing read in the last
# hour go too (third-party dependencies are shared by every checkout and stay).
min_free_gb="${HORSESTREAM_PRUNE_MIN_FREE_GB:-40}"
free_gb=$(( $(df -Pk "$target" | awk 'NR == 2 { print $4 }') / 1024 / 1024 ))
if [ "$free_gb" -lt "$min_free_gb" ]; then
  for profile in debug release; do
    dir="$target/$profile"
    [ -d "$dir" ] || continue
    for sub in deps examples; do
      [ -d "$dir/$sub" ] || continue
      # Test, bench and example executables (not proc-macro libraries, which every
      # dependent crate would be rebuilt for), and the workspace crates' own outputs.
      find "$dir/$sub" -maxdepth 1 -type f -amin +60 \
        \( \( -perm -u+x ! -name '*.so' \) -o -name 'libhorsestream*' -o -name 'horsestream*' \) \
        -delete
    done
  done
  echo "prune-target: only ${free_gb} GB free (< ${min_free_gb}): removed this workspace's outputs unread for an hour"
fi
after=$(du -sk "$target" | cut -f1)
echo "prune-target: $target $((before / 1024)) MiB -> $((after / 1024)) MiB (unread for $days days removed)"
