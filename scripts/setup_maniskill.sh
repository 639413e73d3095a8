#!/usr/bin/env bash
# Idempotent set-up of the ManiSkill3 tasks (PushCube-v1, PullCube-v1, PickCube-v1) on top of scripts/setup.sh:
#   1. the `maniskill` extra into .venv, keeping the installed torch (2.13.0);
#   2. a Vulkan device for SAPIEN (needed even for state observations). Without a GPU that is Mesa's
#      lavapipe from Mesa >= 24.3: on Debian 12 (bookworm), run as root, it comes from bookworm-backports
#      (bookworm's own Mesa 22.3 lacks VK_KHR_external_semaphore_fd and SAPIEN then finds no device).
# The tasks need no downloaded assets (the Panda robot and table ship with the mani_skill package).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "error: .venv is missing; run 'bash scripts/setup.sh' first" >&2
  exit 1
fi

# 1. Python packages, with torch held at its installed version.
torch_version="$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${torch_version}" > "$constraints"
.venv/bin/python -m pip install --quiet -c "$constraints" -e ".[maniskill]"
if ! .venv/bin/python -c "import mani_skill" 2>/dev/null; then
  echo "error: mani_skill is still not importable; check that pyproject.toml has the 'maniskill' extra" >&2
  exit 1
fi
now="$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])')"
if [ "$now" != "$torch_version" ]; then
  echo "error: installing the maniskill extra changed torch from $torch_version to $now" >&2
  exit 1
fi

# 2. A Vulkan device SAPIEN supports.
vulkan_ok() {
  .venv/bin/python - <<'EOF' 2>/dev/null
import sys
import sapien
sys.exit(0 if "Supported: 1" in sapien.render.get_device_summary() else 1)
EOF
}

add_bookworm_backports() {
  local deb822=/etc/apt/sources.list.d/debian.sources
  if grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  if [ -f "$deb822" ] && grep -Eq '^URIs:.*deb\.debian\.org/debian/?$' "$deb822"; then
    # Add the suite to the Suites line of the deb.debian.org/debian stanza (not debian-security).
    awk 'BEGIN { RS = ""; ORS = "\n\n" }
      {
        n = split($0, line, "\n"); main = 0
        for (i = 1; i <= n; i++) if (line[i] ~ /^URIs:.*deb\.debian\.org\/debian\/?$/) main = 1
        out = ""
        for (i = 1; i <= n; i++) {
          if (main && line[i] ~ /^Suites:/) line[i] = line[i] " bookworm-backports"
          out = out (i > 1 ? "\n" : "") line[i]
        }
        print out
      }' "$deb822" > "$deb822.new"
    mv "$deb822.new" "$deb822"
  else
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
}

if vulkan_ok; then
  echo "Vulkan: SAPIEN finds a supported device"
else
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  if [ "$(id -u)" = 0 ] && [ "$codename" = bookworm ] && command -v apt-get >/dev/null; then
    echo "Vulkan: no supported device; installing Mesa's lavapipe from bookworm-backports"
    add_bookworm_backports
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
      mesa-vulkan-drivers libvulkan1 >/dev/null
    if ! vulkan_ok; then
      echo "error: SAPIEN still finds no supported Vulkan device after installing mesa-vulkan-drivers" >&2
      exit 1
    fi
    echo "Vulkan: lavapipe from bookworm-backports installed"
  else
    cat >&2 <<'EOF'
warning: SAPIEN finds no supported Vulkan device, so ManiSkill tasks cannot be built (tests skip).
  With an NVIDIA GPU: install its driver's Vulkan ICD (libnvidia-gl / nvidia-vulkan-icd).
  Without a GPU: Mesa's lavapipe from Mesa >= 24.3 (package mesa-vulkan-drivers, plus libvulkan1);
  on Debian 12, as root: add 'bookworm-backports' to the Suites of /etc/apt/sources.list.d/debian.sources,
  then: apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
EOF
  fi
fi

.venv/bin/python - <<'EOF'
from trl_accel.envs.maniskill import vulkan_available
ok, reason = vulkan_available()
if ok:
    from trl_accel.envs.maniskill import make_maniskill_env
    env = make_maniskill_env("PushCube-v1", num_envs=1, seed=0)
    env.rollout(2)
    env.close()
    print(f"ManiSkill is set up ({reason}); PushCube-v1 runs")
EOF
