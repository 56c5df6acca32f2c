#!/usr/bin/env bash
# Prepares this machine for bottle: a Docker engine that answers, gVisor
# registered as runtime "runsc", the offline images, the Claude Code binary
# and bin/bottle-rpc. Every step is skipped when its result is already there,
# so a second run takes seconds. Runs as root on Debian.
#
#   BOTTLE_NO_GVISOR=1   do not build or register runsc (bottles use runc)
#   BOTTLE_CACHE=DIR     where build contexts and downloads go (~/.cache/bottle)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BOTTLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bottle}
gvisor_version=v0.0.0-20260701204157-69c2d17aea96
claude_version=$(cat "$repo/images/claude/VERSION")
base_image=bottle/base:bookworm
base_packages=ca-certificates,git,openssh-client,curl,netcat-openbsd,procps

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin:/sbin

apt_updated=
apt_update_once() {
  if [ -z "$apt_updated" ]; then apt-get update -q >/dev/null; apt_updated=1; fi
}
apt_install() {
  apt_update_once
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

engine_answers() { timeout 10 docker version >/dev/null 2>&1; }

# The tests reach this engine also "from elsewhere": over TCP on loopback
# with TLS (certificates made here for the test, client and server checked
# by a CA whose key is thrown away once they are signed), beside its unix
# socket. dockerd takes the listener as flags (daemon.json's "hosts" would
# clash with a unit's -H), so a dockerd started without it is restarted
# once, and only while no bottle runs (CI restarts it regardless).
test_tls=/etc/bottle/test-tls
test_tls_host=tcp://127.0.0.1:2376
tls_flags=(-H "$test_tls_host" --tlsverify
  --tlscacert "$test_tls/ca.pem" --tlscert "$test_tls/server-cert.pem" --tlskey "$test_tls/server-key.pem")

ensure_test_tls() {
  if [ -s "$test_tls/client/key.pem" ] && openssl x509 -checkend 2592000 -noout -in "$test_tls/server-cert.pem" >/dev/null 2>&1 &&
    openssl x509 -checkend 2592000 -noout -in "$test_tls/client/cert.pem" >/dev/null 2>&1; then
    return
  fi
  command -v openssl >/dev/null || apt_install openssl
  log "making the test engine's TLS certificates in $test_tls"
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout ca-key.pem -out ca.pem -days 3650 -subj "/CN=bottle test engine CA" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout server-key.pem -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 -extfile server.ext -out server-cert.pem 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout key.pem -out client.csr -subj "/CN=bottle test client" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 -extfile client.ext -out cert.pem 2>/dev/null
  ) || { rm -rf "$tmp"; die "openssl could not make the test certificates"; }
  rm -rf "$test_tls"
  install -d -m 0700 "$test_tls" "$test_tls/client"
  install -m 0644 "$tmp/ca.pem" "$tmp/server-cert.pem" "$test_tls/"
  install -m 0600 "$tmp/server-key.pem" "$test_tls/"
  install -m 0644 "$tmp/ca.pem" "$tmp/cert.pem" "$test_tls/client/"
  install -m 0600 "$tmp/key.pem" "$test_tls/client/"
  rm -rf "$tmp" # with the CA's key: nothing more is signed with it
  # New certificates: a running dockerd still holds the old ones.
  tls_renewed=1
}

tls_listener_answers() {
  timeout 10 docker -H "$test_tls_host" --tlsverify --tlscacert "$test_tls/client/ca.pem" \
    --tlscert "$test_tls/client/cert.pem" --tlskey "$test_tls/client/key.pem" version >/dev/null 2>&1
}

systemd_runs() { command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; }

start_dockerd() {
  if systemd_runs; then
    # The unit's own command line, with the listener added.
    exec_start=$(sed -n 's/^ExecStart=//p' "$(systemctl show -p FragmentPath --value docker)" | tail -n 1)
    mkdir -p /etc/systemd/system/docker.service.d
    printf '[Service]\nExecStart=\nExecStart=%s %s\n' "$exec_start" "${tls_flags[*]}" >/etc/systemd/system/docker.service.d/bottle-test-tls.conf
    systemctl daemon-reload
    systemctl restart docker
  else
    log "starting dockerd (log: /var/log/bottle-dockerd.log)"
    # Any -H replaces the default socket: name it too.
    nohup dockerd -H unix:///var/run/docker.sock "${tls_flags[@]}" >>/var/log/bottle-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do engine_answers && return 0; sleep 1; done
  die "dockerd did not answer within 60 s; see /var/log/bottle-dockerd.log"
}

# Stops a dockerd this script (or anyone) started by hand, to start it
# again with the listener.
stop_dockerd() {
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  [ -n "$pid" ] || die "dockerd runs without the TLS listener and /var/run/docker.pid names no process to restart"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  die "dockerd (pid $pid) did not stop within 60 s"
}

ensure_engine() {
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  ensure_test_tls
  if ! engine_answers; then
    start_dockerd
  elif [ -n "${tls_renewed:-}" ] || ! tls_listener_answers; then
    running=$(docker ps -q --filter label=dev.bottle.session | wc -l)
    if [ "$running" -gt 0 ] && [ "${CI:-}" != true ]; then
      log "warning: dockerd does not listen on $test_tls_host with the test certificates, and $running bottle containers run:"
      log "  not restarting it now; the remote-engine tests fail until scripts/setup.sh runs again with no bottle open"
    else
      log "restarting dockerd once to add its TLS listener on $test_tls_host"
      if systemd_runs; then start_dockerd; else stop_dockerd && start_dockerd; fi
    fi
  fi
  log "docker engine $(docker version --format '{{.Server.Version}}') answers"
}

# Registers runsc in daemon.json (merged with what is there) and reloads the
# daemon: "runtimes" is one of the options dockerd reloads on SIGHUP.
ensure_gvisor() {
  if [ "${BOTTLE_NO_GVISOR:-}" = 1 ]; then
    [ "${CI:-}" = true ] && die "CI never opts out of gVisor: unset BOTTLE_NO_GVISOR"
    log "BOTTLE_NO_GVISOR=1: skipping gVisor, bottles will use runc"
    return
  fi
  stamp=/usr/local/lib/bottle/runsc.version
  if [ ! -x /usr/local/bin/runsc ] || [ "$(cat $stamp 2>/dev/null)" != "$gvisor_version" ]; then
    command -v go >/dev/null || die "Go is needed to build runsc: install it from the Go website or apt-get install golang"
    log "building runsc $gvisor_version (about 3 minutes)"
    gobin=$cache/gvisor/$gvisor_version
    mkdir -p "$gobin" /usr/local/lib/bottle
    CGO_ENABLED=0 GOBIN=$gobin go install "gvisor.dev/gvisor/runsc@$gvisor_version"
    install -m 0755 "$gobin/runsc" /usr/local/bin/runsc
    echo "$gvisor_version" >$stamp
  fi
  if docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
    log "runsc is registered"
    return
  fi
  command -v jq >/dev/null || apt_install jq
  mkdir -p /etc/docker
  [ -s /etc/docker/daemon.json ] || echo '{}' >/etc/docker/daemon.json
  jq '.runtimes.runsc = {"path": "/usr/local/bin/runsc"}' /etc/docker/daemon.json >/etc/docker/daemon.json.new
  mv /etc/docker/daemon.json.new /etc/docker/daemon.json
  log "registering runsc with the daemon"
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl reload docker
  else
    kill -HUP "$(cat /var/run/docker.pid)"
  fi
  for _ in $(seq 1 30); do
    docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' && return 0
    sleep 1
  done
  die "dockerd did not pick up runsc from /etc/docker/daemon.json"
}

# The base image is a debootstrapped Debian, keyed by its recipe so that a
# change to the package list rebuilds it and nothing else does.
ensure_base_image() {
  recipe=$(printf '%s\n' bookworm minbase "$base_packages" node:1000 v1 | sha256sum | cut -c1-16)
  have=$(docker image inspect --format '{{index .Config.Labels "dev.bottle.recipe"}}' $base_image 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then log "$base_image is up to date"; return; fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  rootfs=$(mktemp -d /var/tmp/bottle-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  log "debootstrap bookworm into $rootfs (about a minute)"
  debootstrap --variant=minbase --include="$base_packages" bookworm "$rootfs" http://deb.debian.org/debian >/var/log/bottle-debootstrap.log 2>&1 ||
    die "debootstrap failed; see /var/log/bottle-debootstrap.log"
  chroot "$rootfs" useradd --create-home --uid 1000 --user-group --shell /bin/bash node
  install -d -o 1000 -g 1000 "$rootfs/home/node/workspace"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | docker import \
    --change "LABEL dev.bottle.recipe=$recipe" \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /home/node/workspace' \
    --change 'CMD ["/bin/bash"]' \
    - $base_image >/dev/null
  log "imported $base_image"
}

# The git host that the SSH tests start on a bottle's egress network: Debian's
# sshd from the same release as the base image, layered on it. The .debs are
# fetched with apt-get download on the host and unpacked into the build
# context, so the build itself needs no network. Keyed by the base image
# (which fixes the openssh version to match) and the package list, so a
# second run skips it without starting a container.
sshd_image=bottle/sshd:bookworm
sshd_packages="openssh-server openssh-sftp-server libwrap0 libnsl2 libtirpc3 libtirpc-common"
ensure_sshd_image() {
  base_id=$(docker image inspect --format '{{.Id}}' $base_image)
  recipe=$(printf '%s\n' "$base_id" "$sshd_packages" v3 | sha256sum | cut -c1-16)
  have=$(docker image inspect --format '{{index .Config.Labels "dev.bottle.recipe"}}' $sshd_image 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then log "$sshd_image is up to date"; return; fi
  old=$(docker image inspect --format '{{.Id}}' $sshd_image 2>/dev/null || true)
  ctx=$(mktemp -d /var/tmp/bottle-sshd.XXXXXX)
  trap 'rm -rf "$ctx"' RETURN
  ssh_version=$(docker run --rm --network none --entrypoint dpkg-query $base_image -W -f '${Version}' openssh-client)
  apt_update_once
  log "downloading openssh-server $ssh_version and the libraries the base image lacks"
  pkgs=
  for p in $sshd_packages; do
    case $p in openssh-server | openssh-sftp-server) pkgs="$pkgs $p=$ssh_version" ;; *) pkgs="$pkgs $p" ;; esac
  done
  # shellcheck disable=SC2086
  (cd "$ctx" && apt-get download -q $pkgs >/dev/null 2>&1) || die "apt-get download$pkgs failed"
  mkdir "$ctx/root"
  for deb in "$ctx"/*.deb; do dpkg -x "$deb" "$ctx/root"; done
  # The base image has a merged /usr: its /lib and friends are symlinks,
  # which a COPY of real directories would replace.
  for d in bin sbin lib lib64; do
    if [ -d "$ctx/root/$d" ] && [ ! -L "$ctx/root/$d" ]; then
      mkdir -p "$ctx/root/usr/$d" && cp -a "$ctx/root/$d/." "$ctx/root/usr/$d/" && rm -rf "${ctx:?}/root/$d"
    fi
  done
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base_image
COPY root/ /
RUN ! ldd /usr/sbin/sshd /usr/lib/openssh/sftp-server | grep 'not found' \\
 && useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd \\
 && useradd --create-home --shell /usr/bin/git-shell --password "*" git \\
 && cp /usr/share/openssh/sshd_config /etc/ssh/sshd_config \\
 && mkdir -p /run/sshd && chmod 0755 /run/sshd
LABEL dev.bottle.recipe=$recipe
ENTRYPOINT ["/usr/sbin/sshd", "-D", "-e"]
DOCKERFILE
  docker build --network none --force-rm -q -t $sshd_image "$ctx" >/var/log/bottle-sshd-build.log 2>&1 ||
    die "building $sshd_image failed; see /var/log/bottle-sshd-build.log"
  # The previous build, now untagged, is of no use to anyone.
  [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
  log "built $sshd_image"
}

# The default agent image is built by bottle-rpc itself from this context
# (cached by content); set-up only puts the Claude Code binary there.
ensure_claude_context() {
  ctx=$cache/agents/claude
  if [ "$(cat "$ctx/.version" 2>/dev/null)" != "$claude_version" ]; then
    npmdir=$cache/npm/claude-code-$claude_version
    log "installing @anthropic-ai/claude-code@$claude_version with npm"
    command -v npm >/dev/null || apt_install npm
    mkdir -p "$npmdir" "$ctx"
    npm install --prefix "$npmdir" --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$claude_version" >/dev/null
    bin=$npmdir/node_modules/@anthropic-ai/claude-code-linux-x64/claude
    [ -x "$bin" ] || die "npm did not install the linux-x64 Claude Code binary at $bin"
    cp "$bin" "$ctx/claude.new" && mv "$ctx/claude.new" "$ctx/claude"
    echo "$claude_version" >"$ctx/.version"
  fi
  cmp -s "$repo/images/claude/Dockerfile" "$ctx/Dockerfile" || cp "$repo/images/claude/Dockerfile" "$ctx/Dockerfile"
  log "Claude Code $claude_version build context is in $ctx"
}

build_bottle_rpc() {
  command -v go >/dev/null || die "Go is needed to build bottle-rpc"
  (cd "$repo" && CGO_ENABLED=0 go build -o bin/bottle-rpc ./cmd/bottle-rpc)
  log "built $repo/bin/bottle-rpc"
}

# gcc, for the tests that build bottle-rpc with cgo on (as `go install` does
# where a C compiler exists) and run it as the sidecar.
ensure_cc() {
  command -v gcc >/dev/null || apt_install gcc libc6-dev
}

# staticcheck, which scripts/test.sh runs after go vet: built once from its
# module at a pinned version, so that every machine reports the same findings.
staticcheck_version=0.8.2
ensure_staticcheck() {
  if /usr/local/bin/staticcheck -version 2>/dev/null | grep -qF "($staticcheck_version)"; then
    log "staticcheck $staticcheck_version is installed"
    return
  fi
  command -v go >/dev/null || die "Go is needed to build staticcheck"
  log "building staticcheck $staticcheck_version (a few minutes, once)"
  gobin=$cache/staticcheck/$staticcheck_version
  mkdir -p "$gobin"
  CGO_ENABLED=0 GOBIN=$gobin go install "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
  install -m 0755 "$gobin/staticcheck" /usr/local/bin/staticcheck
}

ensure_engine
ensure_gvisor
ensure_base_image
ensure_sshd_image
ensure_claude_context
build_bottle_rpc
ensure_cc
ensure_staticcheck
