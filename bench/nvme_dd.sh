#!/usr/bin/env bash
# The disk's own speed, the peer of nvme_bench: dd writes, then reads, a file of GiB gibibytes in
# 1 MiB blocks with O_DIRECT (no page cache), one request at a time.
# bench/nvme_dd.sh DIR GiB   -> one line per figure, in nvme_bench's format
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/nvme_dd.sh DIR GiB" >&2; exit 2; }
dir=$1 gib=$2
[ -d "$dir" ] || { echo "nvme_dd: $dir is not a directory" >&2; exit 1; }
file=$dir/nvme_dd.$$
trap 'rm -f "$file"' EXIT

# Runs dd; prints its GB/s from the "N bytes (...) copied, S s, ..." line.
rate() {
  LC_ALL=C dd "$@" 2>&1 >/dev/null | sed -n 's/^\([0-9]*\) bytes.* copied, \([0-9.e+-]*\) s,.*/\1 \2/p' \
    | awk '{printf "%.2f", $1 / $2 / 1e9}'
}

write=$(rate if=/dev/zero of="$file" bs=1M count=$((gib * 1024)) oflag=direct)
read=$(rate if="$file" of=/dev/null bs=1M iflag=direct)
printf "%-8s %-5s %4d GiB %7.2f GB/s  (bs 1 MiB, queue depth 1, O_DIRECT)\n" dd write "$gib" "$write"
printf "%-8s %-5s %4d GiB %7.2f GB/s  (bs 1 MiB, queue depth 1, O_DIRECT)\n" dd read "$gib" "$read"
