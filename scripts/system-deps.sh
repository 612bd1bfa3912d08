#!/usr/bin/env bash
# Installs the system tools Nexus needs (and, with --test, those its tests need) when they are missing.
# As root it uses apt; otherwise it says exactly what to install and fails.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
ldconfig -p 2>/dev/null | grep -q libchromaprint || need+=(libchromaprint1)
if [[ "${1:-}" == "--test" ]]; then
  command -v espeak-ng >/dev/null || need+=(espeak-ng)
  # tests/e2e/test_deployment.py validates docker-compose.yml with it (`config` needs no Docker daemon).
  command -v docker-compose >/dev/null || need+=(docker-compose)
  # tests/e2e/test_console.py drives it with Playwright (whose own browser download is unreachable here).
  command -v chromium >/dev/null || need+=(chromium)
fi
[[ ${#need[@]} -eq 0 ]] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "Nexus needs these system packages: ${need[*]}" >&2
  echo "install them, e.g.: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
