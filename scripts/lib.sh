# Shared by the set-up scripts (sourced, not run). Callers define say().

# install_debs WHY PKG...: install the Debian packages among PKG that are missing, once,
# and say what was done or that nothing was needed.
install_debs() {
    local why="$1" p
    shift
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]} ($why)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        say "$why: present ($*)"
    fi
}
