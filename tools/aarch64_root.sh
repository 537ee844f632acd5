#!/usr/bin/env bash
# An emulated Raspberry Pi userland: a Debian bookworm arm64 root run under qemu-user.
#
# It holds what the README's Raspberry Pi section says a Pi needs and nothing more: bookworm's
# own python3 (3.11) and a venv made with `python3 -m venv ~/venv` into which
# `pip install onnxruntime numpy` put the aarch64 wheels (downloaded on the host with pinned
# versions, installed with --no-index: the root has no package index of its own).
# tests/test_aarch64.py runs a profiling bundle in it; .ci/run prepares it before the tests.
#
#   tools/aarch64_root.sh prepare            build the root once (cached), register binfmt
#   tools/aarch64_root.sh check              exit 0 when the root is ready and runs aarch64
#   tools/aarch64_root.sh run DIR -- CMD...  run CMD in the root, cwd ~/bundle = DIR (bind mount)
#   tools/aarch64_root.sh clean              remove the cache
#
# Must run as root (debootstrap, chroot, mount). Environment:
#   HWNAS_AARCH64_CACHE   cache dir (default /var/cache/hwnas-aarch64); survives between CI runs
#   HWNAS_AARCH64_MIRROR  Debian mirror (default: the one this machine's apt uses)
#   HWNAS_AARCH64_CPU     the CPU qemu emulates (default cortex-a72: a Raspberry Pi 4's)
# Timings measured in this root are emulated (qemu-user: 20x to 300x slower than native, unevenly):
# they say nothing about a Raspberry Pi's speed.
set -euo pipefail

CACHE=$(realpath -m "${HWNAS_AARCH64_CACHE:-/var/cache/hwnas-aarch64}")
ROOT=$CACHE/root
WHEELS=$CACHE/wheels
SUITE=bookworm
# What `pip install onnxruntime numpy` resolves to on a bookworm Pi (glibc 2.36, cp311, aarch64),
# pinned so that the cache is reproducible: onnxruntime, numpy and onnxruntime's dependencies.
TOP=(onnxruntime==1.32.0 numpy==2.4.6)
PINS=("${TOP[@]}" flatbuffers==25.12.19 packaging==26.4 protobuf==7.36.2)
# Changing any of this rebuilds the cached root.
RECIPE="hwnas-aarch64-root v1 $SUITE arm64 minbase python3,python3-venv ${PINS[*]}"
STAMP=.hwnas-aarch64-ready
# The CPU qemu emulates: the Raspberry Pi 4's (ARMv8.0-A, no dot-product or SVE instructions),
# so a wheel that needs more than a Pi 4 has dies here with SIGILL. The Pi 5's Cortex-A76 is a
# superset.
CPU=${HWNAS_AARCH64_CPU:-cortex-a72}
BINFMT=/proc/sys/fs/binfmt_misc

say() { echo "aarch64_root: $*" >&2; }
die() { say "$*"; exit 1; }
# This machine lacks something the root needs (root rights, a package, the network): exit 3,
# which tests/test_aarch64.py turns into a skip. Any other failure exits 1 and fails the test.
unavailable() { say "$*"; exit 3; }

need_root() { [ "$(id -u)" = 0 ] || unavailable "must run as root (debootstrap, chroot, mount)"; }

mirror() {
  if [ -n "${HWNAS_AARCH64_MIRROR:-}" ]; then echo "$HWNAS_AARCH64_MIRROR"; return; fi
  # The first .../debian URL in apt's sources (one-line .list or deb822 .sources format).
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null \
      | awk '/^deb /{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}
             /^URIs:/{for(i=2;i<=NF;i++) print $i}' \
      | grep -E '/debian/?$' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# Register qemu-aarch64 with binfmt_misc by hand (no systemd here). The F flag of Debian's
# entry makes the kernel open the interpreter at registration, so chroots need no copy of it.
register_binfmt() {
  if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
      || unavailable "cannot mount binfmt_misc on $BINFMT"
  fi
  if [ -e "$BINFMT/qemu-aarch64" ]; then
    grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 > "$BINFMT/qemu-aarch64"
    return 0
  fi
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -r "$conf" ] || unavailable "no $conf: apt-get install qemu-user-static"
  grep -v -e '^#' -e '^$' "$conf" | head -n1 > "$BINFMT/register" \
    || unavailable "cannot register qemu-aarch64 with binfmt_misc"
}

# When an aarch64 interpreter was registered without the F flag, it is looked up inside the
# chroot: put a copy there.
interpreter_into() {
  local root=$1 interp flags
  interp=$(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64")
  flags=$(sed -n 's/^flags: //p' "$BINFMT/qemu-aarch64")
  case $flags in *F*) return 0 ;; esac
  mkdir -p "$root$(dirname "$interp")"
  cp -L "$interp" "$root$interp"
}

# Unmount whatever is still mounted under $1 (only after an unclean exit without a private
# mount namespace), then remove it without crossing into other file systems.
remove_tree() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(
    awk -v d="$(realpath "$dir")" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

ready() { [ -f "$ROOT/$STAMP" ] && [ "$(cat "$ROOT/$STAMP")" = "$RECIPE" ]; }

# Run "$@" inside root $1 with /proc, /sys and /dev mounted. In a private mount namespace when
# unshare works (mounts vanish with the process, even on SIGKILL), and a trap unmounts anyway.
in_root() {
  local root=$1; shift
  if [ -z "${HWNAS_AARCH64_NS:-}" ] && unshare --mount --propagation private true 2>/dev/null; then
    HWNAS_AARCH64_NS=1 exec unshare --mount --propagation private bash "$0" _in_root "$root" "$@"
  fi
  _in_root "$root" "$@"
}

# qemu-user (7.2) shows aarch64 programs the host's x86 /proc/cpuinfo, which onnxruntime's
# cpuinfo library cannot parse (onnxruntime 1.32 crashes on import when /sys is mounted too).
# A Raspberry Pi shows an ARM one: this is its shape, one entry per present host CPU, for the
# CPU qemu emulates, and a Model line that says what this machine really is.
fake_cpuinfo() {
  local r a b i part
  case $CPU in
    cortex-a53) part=0xd03 ;; cortex-a57) part=0xd07 ;; cortex-a72) part=0xd08 ;;
    cortex-a76) part=0xd0b ;; *) part=0x000 ;;
  esac
  for r in $(tr ',' ' ' < /sys/devices/system/cpu/present); do
    a=${r%-*}; b=${r#*-}
    for ((i = a; i <= b; i++)); do
      printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
      printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\n' "$part"
      printf 'CPU revision\t: 3\n\n'
    done
  done
  printf 'Model\t\t: qemu-user emulation on %s, not a Raspberry Pi\n' "$(uname -m)"
}

MOUNTED=()
# shellcheck disable=SC2317  # called by the EXIT trap
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[i]}" 2>/dev/null || true; done
  MOUNTED=()
}

_in_root() {
  local root=$1; shift
  trap unmount_all EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mount -t proc proc "$root/proc" && MOUNTED+=("$root/proc")
  if [ -e "$root/proc/cpuinfo" ]; then
    fake_cpuinfo > "$CACHE/cpuinfo.$$"
    mount --bind "$CACHE/cpuinfo.$$" "$root/proc/cpuinfo" && MOUNTED+=("$root/proc/cpuinfo")
    rm -f "$CACHE/cpuinfo.$$"   # the mount keeps the file
  fi
  mount -t sysfs sysfs "$root/sys" && MOUNTED+=("$root/sys")
  mount --bind /dev "$root/dev" && MOUNTED+=("$root/dev")
  if [ -n "${HWNAS_AARCH64_BUNDLE:-}" ]; then
    mkdir -p "$root/root/bundle"
    mount --bind "$HWNAS_AARCH64_BUNDLE" "$root/root/bundle" || die "cannot bind-mount the bundle"
    MOUNTED+=("$root/root/bundle")
  fi
  # Not exec: the trap must unmount after the command (killing the process group kills the
  # chroot's processes too: qemu-user runs them as ordinary host processes).
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
    QEMU_CPU="$CPU" PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 "$@"
}

download_wheels() {
  [ -f "$WHEELS/$STAMP" ] && [ "$(cat "$WHEELS/$STAMP")" = "${PINS[*]}" ] && return 0
  local new=$WHEELS.new plat=() v
  remove_tree "$new"
  mkdir -p "$new"
  # The manylinux tags a bookworm aarch64 pip accepts (glibc 2.36).
  for v in 17 24 26 27 28 31 34 35 36; do plat+=(--platform "manylinux_2_${v}_aarch64"); done
  say "downloading aarch64 wheels: ${PINS[*]}"
  python3 -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" \
    --platform manylinux2014_aarch64 --python-version 3.11 -d "$new" "${PINS[@]}" \
    || unavailable "pip download of the aarch64 wheels failed (no access to PyPI?)"
  echo "${PINS[*]}" > "$new/$STAMP"
  remove_tree "$WHEELS"
  mv "$new" "$WHEELS"
}

prepare() {
  need_root
  for c in debootstrap chroot unshare; do
    command -v "$c" >/dev/null \
      || unavailable "$c not found: apt-get install debootstrap qemu-user-static"
  done
  [ -e /usr/bin/qemu-aarch64-static ] || [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ] \
    || unavailable "qemu-user-static not installed: apt-get install qemu-user-static"
  register_binfmt
  mkdir -p "$CACHE"
  exec 9> "$CACHE/.lock"
  flock 9
  if ready; then
    interpreter_into "$ROOT"
    say "ready (cached): $ROOT"
    return 0
  fi
  download_wheels
  local new=$CACHE/root.new m boot="debootstrap $SUITE arm64 minbase python3,python3-venv"
  if [ -f "$new/.hwnas-debootstrap-ok" ] && [ "$(cat "$new/.hwnas-debootstrap-ok")" = "$boot" ]; then
    say "reusing the completed debootstrap in $new"
    rm -rf "$new/root/venv" "$new/root/wheels"
  else
    remove_tree "$new"   # a half-built root from an interrupted run
    m=$(mirror)
    say "debootstrap $SUITE arm64 from $m into $new (a few minutes)"
    mkdir -p "$new"
    interpreter_into "$new"
    mkdir -p "$CACHE/debs"   # the downloaded packages, kept for a rebuild
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv \
      --cache-dir="$CACHE/debs" "$SUITE" "$new" "$m" > "$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$CACHE/debootstrap.log" >&2
           unavailable "debootstrap failed (mirror $m unreachable? log: $CACHE/debootstrap.log)"; }
    rm -f "$new"/var/cache/apt/archives/*.deb
    echo "$boot" > "$new/.hwnas-debootstrap-ok"
  fi
  mkdir -p "$new/root/wheels" "$new/root/bundle"
  cp "$WHEELS"/*.whl "$new/root/wheels/"
  say "python3 -m venv ~/venv && ~/venv/bin/pip install onnxruntime numpy (from the wheels)"
  # What the README tells a Pi user, with the pinned wheels in place of the package index.
  (in_root "$new" /bin/sh -c 'cd && python3 -m venv venv &&
      venv/bin/pip install -q --no-index --find-links wheels "$@"' sh "${TOP[@]}") \
    || die "installing the wheels in the root failed"
  rm -rf "$new/root/wheels" "$new/root/.cache"
  local out
  out=$(in_root "$new" /root/venv/bin/python3 -c \
    'import platform, sys, numpy, onnxruntime as ort
print(platform.machine(), "%d.%d" % sys.version_info[:2], ort.__version__, numpy.__version__)')
  say "root check: $out"
  case $out in aarch64\ 3.11\ *) ;; *) die "unexpected root: $out" ;; esac
  echo "$RECIPE" > "$new/$STAMP"
  remove_tree "$ROOT"
  mv "$new" "$ROOT"
  say "ready: $ROOT"
}

check() {
  need_root
  ready || die "not prepared: run tools/aarch64_root.sh prepare"
  register_binfmt
  interpreter_into "$ROOT"
  local m
  m=$(chroot "$ROOT" /bin/uname -m) || die "cannot run aarch64 binaries (binfmt_misc/qemu)"
  [ "$m" = aarch64 ] || die "uname -m in the root says $m"
  echo "aarch64 root ready: $ROOT ($RECIPE)"
}

run() {
  need_root
  [ $# -ge 1 ] || die "usage: run DIR -- CMD..."
  local dir=$1; shift
  [ "${1:-}" = -- ] && shift
  [ $# -ge 1 ] || set -- /bin/sh
  [ -d "$dir" ] || die "no such directory: $dir"
  ready || die "not prepared: run tools/aarch64_root.sh prepare"
  register_binfmt
  mkdir -p "$CACHE"
  exec 9> "$CACHE/.lock"
  flock -s 9   # no rebuild while a command runs in the root
  HWNAS_AARCH64_BUNDLE=$(realpath "$dir")
  export HWNAS_AARCH64_BUNDLE
  in_root "$ROOT" /bin/sh -c 'cd ~/bundle && exec "$@"' sh "$@"
}

# One compound command, read whole before it runs, then exit: editing this file while it runs
# (a git pull during a long prepare) cannot change what runs.
{
  case ${1:-} in
    prepare) prepare ;;
    check) check ;;
    run) shift; run "$@" ;;
    clean) need_root; remove_tree "$CACHE"; say "removed $CACHE" ;;
    _in_root) shift; _in_root "$@" ;;
    *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 2 ;;
  esac
  exit
}
