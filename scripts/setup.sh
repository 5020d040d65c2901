#!/usr/bin/env bash
# make setup: idempotent. OS packages (apt-get), the Toxiproxy server, a virtualenv with the
# project. Each step checks first and does nothing when its part is already in place; a
# step that cannot be done says exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
VENV="${VENV:-.venv}"
BIN_DIR="$PWD/.bin"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

have_postgres() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
have_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }

# ---- 1. OS packages ------------------------------------------------------------------
missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
have_venv || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    fail "missing OS packages: ${missing[*]}. Install them (apt-get install ${missing[*]}) and run make setup again."
  fi
  say "installing OS packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts the packaged services where it can; the stack runs its own instances.
id postgres >/dev/null 2>&1 || fail "the postgresql package did not create the postgres user: reinstall postgresql."

# ---- 2. Toxiproxy server ----------------------------------------------------------------
if command -v toxiproxy-server >/dev/null 2>&1; then
  say "toxiproxy-server on PATH: $(command -v toxiproxy-server)"
elif [ -x "$BIN_DIR/toxiproxy-server" ] && "$BIN_DIR/toxiproxy-server" -version 2>&1 | grep -q "${TOXIPROXY_VERSION#v}"; then
  say "toxiproxy-server ${TOXIPROXY_VERSION} in .bin/"
else
  mkdir -p "$BIN_DIR"
  arch="$(uname -m)"; case "$arch" in x86_64) arch=amd64;; aarch64|arm64) arch=arm64;; esac
  os="$(uname -s | tr '[:upper:]' '[:lower:]')"
  url="https://github.com/Shopify/toxiproxy/releases/download/${TOXIPROXY_VERSION}/toxiproxy-server-${os}-${arch}"
  # The release binary is taken only when its SHA-256 is the one pinned here (v2.12.0's
  # toxiproxy-server-linux-amd64); another platform or version, or a download that differs,
  # is built from source instead, which Go checks against the module checksum database.
  pinned=""
  [ "${TOXIPROXY_VERSION}-${os}-${arch}" = "v2.12.0-linux-amd64" ] && \
    pinned="556d891134a3c582dc1e1a3f7335fd55142e5965769855a00b944e13e48302fc"
  say "fetching the official Toxiproxy ${TOXIPROXY_VERSION} release binary"
  if [ -n "$pinned" ] && curl -fsSL --connect-timeout 5 --max-time 60 -o "$BIN_DIR/toxiproxy-server.part" "$url" 2>/dev/null \
      && echo "$pinned  $BIN_DIR/toxiproxy-server.part" | sha256sum -c --status; then
    say "release binary matches its pinned SHA-256"
    chmod +x "$BIN_DIR/toxiproxy-server.part" && mv "$BIN_DIR/toxiproxy-server.part" "$BIN_DIR/toxiproxy-server"
  else
    if [ -s "$BIN_DIR/toxiproxy-server.part" ]; then
      say "the downloaded binary's SHA-256 is not the pinned one: not used"
    fi
    rm -f "$BIN_DIR/toxiproxy-server.part"
    GO="$(command -v go || ls /usr/local/go/bin/go 2>/dev/null || true)"
    [ -n "$GO" ] || fail "could not download Toxiproxy and Go is not installed: install Go >= 1.22 (https://go.dev/dl) or put toxiproxy-server ${TOXIPROXY_VERSION} on PATH."
    say "release binary unavailable; building with go install (github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION})"
    GOBIN="$BIN_DIR/go" "$GO" install \
      -ldflags "-X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION#v}" \
      "github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}"
    mv "$BIN_DIR/go/server" "$BIN_DIR/toxiproxy-server" && rmdir "$BIN_DIR/go" 2>/dev/null || true
  fi
  "$BIN_DIR/toxiproxy-server" -version >/dev/null 2>&1 || fail "the toxiproxy-server in .bin/ does not run"
  say "toxiproxy-server installed in .bin/"
fi

# ---- 2b. Alertmanager: paging judged through a real one (`make observe`, OBSERVE=1) --------
# Built with Go into .bin/ (as Toxiproxy is when its release cannot be downloaded) when no
# alertmanager of the pinned version is on PATH.
ALERTMANAGER_VERSION="${ALERTMANAGER_VERSION:-v0.35.0}"
am_version() { "$1" --version 2>&1 | grep -q "version ${ALERTMANAGER_VERSION#v}"; }
if command -v alertmanager >/dev/null 2>&1 && am_version "$(command -v alertmanager)"; then
  say "alertmanager ${ALERTMANAGER_VERSION} on PATH: $(command -v alertmanager)"
elif [ -x "$BIN_DIR/alertmanager" ] && am_version "$BIN_DIR/alertmanager"; then
  say "alertmanager ${ALERTMANAGER_VERSION} in .bin/"
else
  GO_FOR_AM="$(command -v go || ls /usr/local/go/bin/go 2>/dev/null || true)"
  VENV_PY_FOR_AM="$(command -v python3)"
  [ -n "$GO_FOR_AM" ] || fail "alertmanager ${ALERTMANAGER_VERSION} is needed for paging checks: install Go >= 1.22 (https://go.dev/dl) and run make setup again, or put alertmanager ${ALERTMANAGER_VERSION} on PATH."
  mkdir -p "$BIN_DIR"
  say "building alertmanager ${ALERTMANAGER_VERSION} from its module (about a minute, once)"
  # `go install ...@${ALERTMANAGER_VERSION}` cannot build from the module proxy: the web UI
  # it embeds (ui/app/dist) is built by npm in their release process and is not in the
  # module. The harness needs only the API, so the module is built with a one-page UI.
  am_mod="$("$GO_FOR_AM" mod download -json "github.com/prometheus/alertmanager@${ALERTMANAGER_VERSION}" \
    | "$VENV_PY_FOR_AM" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  am_src="$(mktemp -d)"
  trap 'rm -rf "$am_src"' EXIT
  cp -r "$am_mod/." "$am_src/" && chmod -R u+w "$am_src"
  for ui in elm mantine; do
    mkdir -p "$am_src/ui/app/dist/$ui"
    echo '<!doctype html><title>Alertmanager</title><p>API only: built by checkout-chaos make setup</p>' \
      > "$am_src/ui/app/dist/$ui/index.html"
  done
  (cd "$am_src" && "$GO_FOR_AM" build -o "$BIN_DIR/alertmanager" \
    -ldflags "-X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" ./cmd/alertmanager)
  rm -rf "$am_src"; trap - EXIT
  am_version "$BIN_DIR/alertmanager" || fail "the alertmanager built in .bin/ does not say version ${ALERTMANAGER_VERSION}"
  say "alertmanager installed in .bin/"
fi

# ---- 3. Python virtualenv with the project ---------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi
if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
  say "installing Python dependencies (pinned in pyproject.toml)"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[dev]'
  touch "$VENV/.installed"
else
  say "Python dependencies up to date"
fi
# ---- 4. django-oscar, a target (targets/oscar.yaml), in a virtualenv of its own ----------
# The pins are pyproject.toml's `oscar` extra; Oscar's Django stack stays out of the
# harness's virtualenv. CC_SKIP_OSCAR=1 leaves it out.
OSCAR_VENV="${OSCAR_VENV:-.venv-oscar}"
if [ "${CC_SKIP_OSCAR:-0}" != "1" ]; then
  if [ ! -f "$OSCAR_VENV/.installed" ] || [ pyproject.toml -nt "$OSCAR_VENV/.installed" ]; then
    say "installing django-oscar into $OSCAR_VENV (the oscar extra's pins)"
    [ -x "$OSCAR_VENV/bin/python" ] || python3 -m venv "$OSCAR_VENV"
    mapfile -t oscar_pins < <("$VENV/bin/python" -c 'import tomllib; print("\n".join(
      tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["oscar"]))')
    "$OSCAR_VENV/bin/pip" install -q --upgrade pip
    "$OSCAR_VENV/bin/pip" install -q "${oscar_pins[@]}"
    touch "$OSCAR_VENV/.installed"
  else
    say "django-oscar up to date in $OSCAR_VENV"
  fi
fi
# This install's own secrets (cookie and vault keys, store passwords), made once, mode 0600,
# in the run folder git ignores; `make up` would make them too.
"$VENV/bin/python" -c 'import sys; from chaos.stack.secrets import main; main(sys.argv[1:])' \
  "${CC_RUN_DIR:-.run}"
say "ready"
