#!/usr/bin/env bash
# Compares the netstack's TCP settings side by side: each variant runs the same
# `geneve64 bench` with GENEVE64_TCP set for both endpoints, and the figures the choice
# depends on are printed in one table. Usage: scripts/tcp-settings.sh [duration]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-2s}
bin=$(mktemp -d)/geneve64
go build -o "$bin" ./cmd/geneve64
if [ -n "${VARIANTS:-}" ]; then
  IFS=' ' read -r -a variants <<<"$VARIANTS"
else
  variants=(
    ""                                   # the defaults
    "rcvbuf=8388608,sndbuf=6291456"      # the starting point, before the benchmark chose 4 MiB
    "cc=cubic"
    "rack=on"
    "cc=cubic,rack=on"
    "rcvbuf=4194304,sndbuf=4194304"
    "rcvbuf=16777216,sndbuf=16777216"
    "moderate=off"
  )
fi
printf '%-34s %10s %10s %10s %10s %10s\n' "GENEVE64_TCP" "1 up" "1 down" "4 up" "4 down" "p50 µs"
for v in "${variants[@]}"; do
  out=$(GENEVE64_TCP="$v" "$bin" bench --only bulk,latency --duration "$duration" 2>/dev/null)
  # the figure is the field just before its unit
  pick() { grep -F "$1" <<<"$out" | head -1 | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "Gbit/s" || $(i+1) == "µs") { print $i; exit }}'; }
  printf '%-34s %10s %10s %10s %10s %10s\n' "${v:-(defaults)}" \
    "$(pick 'SOCKS5, 1 stream(s) up, inner MTU 1394')" "$(pick 'SOCKS5, 1 stream(s) down, inner MTU 1394')" \
    "$(pick 'SOCKS5, 4 stream(s) up, inner MTU 1394')" "$(pick 'SOCKS5, 4 stream(s) down, inner MTU 1394')" \
    "$(pick 'SOCKS5 1-byte ping-pong p50')"
done
