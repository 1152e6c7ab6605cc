# Shared helpers for keelson's scripts. Source it; do not run it.
set -euo pipefail

KEELSON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages keelson needs to build (rocksdb's bindgen needs clang) and to test
# (the reference etcd 3.4 and etcdctl for the side-by-side conformance tests; protoc for the
# `etcd-client` crate's build script, a test-only dependency: keelson's own protos are
# compiled by the pure-Rust protox).
KEELSON_BUILD_PACKAGES=(clang libclang-dev)
# The node agent's container runtime: Podman with runc (crun fails on these hosts; the agent
# runs its own `podman system service` with a containers.conf that selects runc), and
# nftables for keelson-proxy (Services' ClusterIPs and NodePorts on the node).
KEELSON_RUN_PACKAGES=(podman runc nftables)
# busybox-static: the kubelet tests build their container image from it (no registry).
# iproute2: tests/jepsen.rs puts store members in network namespaces. curl: the kubelet test
# reads the kubelet endpoint's /metrics with a client certificate. openssl: tests/etcd_tls.rs
# reads the certificates the store's ports present.
KEELSON_TEST_PACKAGES=(etcd-server etcd-client protobuf-compiler podman runc busybox-static iproute2 curl openssl nftables)

# Installs the given Debian packages if any is missing: one `apt-get update`, then
# `apt-get install -y` of just the missing ones. Does nothing when all are present.
ensure_packages() {
    local missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        echo "keelson: missing packages ${missing[*]} and no apt-get to install them" >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "keelson: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A build directory outside the clone, so repeated runs on one machine are incremental.
ensure_target_dir() {
    if [ -z "${CARGO_TARGET_DIR:-}" ]; then
        export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/keelson/target"
    fi
    mkdir -p "$CARGO_TARGET_DIR"
}

# The Python `kubernetes` client for the client conformance test, in a virtualenv of its own
# (never the system's site-packages). Exports KEELSON_PYTHON for the tests.
KEELSON_PY_KUBERNETES="32.0.1"
ensure_python_client() {
    local venv="${XDG_CACHE_HOME:-$HOME/.cache}/keelson/pyvenv"
    if ! command -v python3 >/dev/null; then
        ensure_packages python3 python3-venv
    fi
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" 2>/dev/null || { ensure_packages python3-venv && python3 -m venv "$venv"; }
    fi
    if ! "$venv/bin/python" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$KEELSON_PY_KUBERNETES')" 2>/dev/null; then
        echo "keelson: installing the Python kubernetes client $KEELSON_PY_KUBERNETES" >&2
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "kubernetes==$KEELSON_PY_KUBERNETES"
    fi
    export KEELSON_PYTHON="$venv/bin/python"
}
