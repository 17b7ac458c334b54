# Sourced by build/setup.sh and build/services.sh: apt-get that waits for another package manager
# (a fresh VM runs apt-daily and unattended upgrades at boot) instead of failing at once.
# DPkg::Lock::Timeout makes apt wait for dpkg's locks only; the package lists' lock (held by
# another `apt-get update`) and the download cache's lock (a download-only upgrade) have no such
# option, so a run refused by one of them is repeated, for up to the same 10 minutes.
apt_get() {
  local until=$((SECONDS + 600)) out
  while :; do
    if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1); then
      return 0
    fi
    if [[ "$out" != *"Could not get lock"* ]] || [ "$SECONDS" -ge "$until" ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    sleep 5
  done
}
