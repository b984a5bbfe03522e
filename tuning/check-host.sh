#!/usr/bin/env bash
# Reports the host settings that matter for pinfeed's pinned hot threads. Read-only.
set -euo pipefail
cd "$(dirname "$0")/.."
show() { printf '%-28s %s\n' "$1" "$2"; }
read_or() { [ -r "$1" ] && cat "$1" 2>/dev/null || echo "$2"; }
show "cores online" "$(nproc) ($(read_or /sys/devices/system/cpu/online '?'))"
show "isolated cores" "$(read_or /sys/devices/system/cpu/isolated 'unknown')"
show "nohz_full cores" "$(read_or /sys/devices/system/cpu/nohz_full 'unknown')"
gov=$(read_or /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 'no cpufreq (VM?)')
show "cpu0 governor" "$gov"
show "clocksource" "$(read_or /sys/devices/system/clocksource/clocksource0/current_clocksource '?')"
show "transparent hugepages" "$(read_or /sys/kernel/mm/transparent_hugepage/enabled '?')"
if pgrep -x irqbalance >/dev/null 2>&1; then show "irqbalance" "running"; else show "irqbalance" "not running"; fi
show "net.core.rmem_max" "$(read_or /proc/sys/net/core/rmem_max '?')"
show "net.core.wmem_max" "$(read_or /proc/sys/net/core/wmem_max '?')"
show "kernel cmdline" "$(read_or /proc/cmdline '?')"
