#!/usr/bin/env bash
# deps.sh - idempotent installer of the testbed's real binaries.
#
# Builds etcd, the Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler), kwok, thanos and Karpenter's kwok
# provider from the Go module proxy, and installs Debian's prometheus package
# (prometheus + promtool).
#
# Built binaries are cached OUTSIDE git, one directory per component and
# version:
#
#   $CACHE/etcd-<ver>/etcd
#   $CACHE/kubernetes-<ver>/{kube-apiserver,kube-controller-manager,kube-scheduler}
#   $CACHE/kwok-<ver>/{kwok,stages.yaml}
#   $CACHE/thanos-<ver>/thanos
#   $CACHE/karpenter-<ver>/{karpenter-kwok,crds/*.yaml}
#
# with CACHE=${UPGRADEGUARD_TESTBED_CACHE:-$HOME/.cache/upgradeguard-testbed}.
# Each component is built in a throw-away directory, written to
# $CACHE/<name>-<ver>.tmp and renamed into place only once complete, so an
# interrupted run never leaves a directory that looks finished. A directory
# that is present and complete is reused: a second run is a fast no-op (it
# does not even invoke the go command).
#
# See ../../../shared/TESTBED.md (the machine notes) for why each component is
# built the way it is.
#
# Usage: internal/testbed/deps.sh
# Output: one line per component ("cached" or "built in Ns"), then
#         UPGRADEGUARD_TESTBED_CACHE=<dir>
set -euo pipefail

# ---------------------------------------------------------------------------
# Versions.
ETCD_VERSION="v3.6.16"
KUBERNETES_VERSION="v1.37.2" # staging modules are used at v0.<minor>.<patch>
KWOK_VERSION="v0.8.0"
THANOS_VERSION="v0.42.0" # newest whose go.mod asks for no newer Go than 1.26.8
KARPENTER_VERSION="v1.15.0"
KARPENTER_GOTOOLCHAIN="go1.27.3" # its go.mod asks for go 1.26.9; used for that build only
PROMETHEUS_DEB="prometheus" # Debian package; gives /usr/bin/prometheus, /usr/bin/promtool
# ---------------------------------------------------------------------------

# Same rule as CacheDir() in binaries.go (no HOME: the temp dir).
if [[ -n "${HOME:-}" ]]; then
	CACHE="${UPGRADEGUARD_TESTBED_CACHE:-$HOME/.cache/upgradeguard-testbed}"
else
	CACHE="${UPGRADEGUARD_TESTBED_CACHE:-${TMPDIR:-/tmp}/upgradeguard-testbed}"
fi

# Common go build flags: small, reproducible-ish, static where possible.
GO_BUILD_FLAGS=(-trimpath -buildvcs=false)
GO_LDFLAGS_BASE="-s -w"

log() { printf '%s\n' "$*"; }
die() {
	printf 'deps.sh: ERROR: %s\n' "$*" >&2
	exit 1
}

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
fi

WORK=""         # throw-away build area for this run
CURRENT_TMP=""  # $CACHE/<name>-<ver>.tmp being populated, if any
POLICY_RC_CREATED=""
CHILD=""        # pid of the command run() is waiting for, if any

cleanup() {
	local rc=$?
	if [[ -n "$CHILD" ]]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	if [[ -n "$CURRENT_TMP" && -e "$CURRENT_TMP" ]]; then
		rm -rf -- "$CURRENT_TMP" || true
	fi
	if [[ -n "$WORK" && -d "$WORK" ]]; then
		# Copies out of the module cache are read-only.
		chmod -R u+w -- "$WORK" 2>/dev/null || true
		rm -rf -- "$WORK" || true
	fi
	if [[ -n "$POLICY_RC_CREATED" ]]; then
		$SUDO rm -f /usr/sbin/policy-rc.d || true
	fi
	if [[ $rc -ne 0 ]]; then
		printf 'deps.sh: FAILED (exit %d); see the messages above\n' "$rc" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p -- "$CACHE" || die "cannot create cache directory $CACHE"
CACHE="$(cd -- "$CACHE" && pwd -P)"

# Serialise concurrent runs (e.g. several test packages bootstrapping at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$CACHE/.lock"
	flock 9
fi

# Leftovers of runs that were killed (SIGKILL, power loss) before their trap
# ran. We hold the lock, so no other run is using them.
for stale in "$CACHE"/.work.* "$CACHE"/*.tmp; do
	[[ -e "$stale" ]] || continue
	chmod -R u+w -- "$stale" 2>/dev/null || true
	rm -rf -- "$stale"
done

# complete DIR FILE... : true when DIR holds every FILE, non-empty.
complete() {
	local dir=$1
	shift
	[[ -d "$dir" ]] || return 1
	local f
	for f in "$@"; do
		[[ -s "$dir/$f" ]] || return 1
	done
}

# need_go: check the go command once, only when something must be built.
GO_CHECKED=""
need_go() {
	[[ -n "$GO_CHECKED" ]] && return 0
	command -v go >/dev/null 2>&1 || die "the go command is not on PATH (needed to build the testbed binaries)"
	export GOWORK=off CGO_ENABLED=0
	need_work
	GO_CHECKED=1
}

# need_work: creates this run's build area (for logs and throw-away modules).
# It lives in the cache dir, not /tmp: a /tmp cleaner (test code removing
# stale upgradeguard-testbed-* dirs) deleted a build dir mid-build here.
need_work() {
	[[ -n "$WORK" ]] && return 0
	WORK="$(mktemp -d "$CACHE/.work.XXXXXXXX")"
}

# begin NAME-VER : prepares an empty $CACHE/NAME-VER.tmp, sets OUT to it.
begin() {
	local key=$1
	CURRENT_TMP="$CACHE/$key.tmp"
	rm -rf -- "$CURRENT_TMP"
	mkdir -p -- "$CURRENT_TMP"
	OUT="$CURRENT_TMP"
	START=$SECONDS
}

# commit NAME-VER LABEL : atomically moves the .tmp dir into place.
commit() {
	local key=$1 label=$2
	local final="$CACHE/$key"
	# An incomplete leftover (only possible if someone edited the cache) goes.
	rm -rf -- "$final"
	mv -- "$CURRENT_TMP" "$final"
	CURRENT_TMP=""
	log "$label: built in $((SECONDS - START))s ($final)"
}

# moddir MODULE@VERSION : downloads a module, prints its module cache dir.
moddir() {
	local dir
	dir="$(cd "$WORK" && go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" ||
		die "go mod download $1 failed"
	[[ -n "$dir" && -d "$dir" ]] || die "go mod download $1 gave no directory"
	printf '%s\n' "$dir"
}

# run LABEL DIR CMD... : runs CMD in DIR. Its output (go's many
# "downloading" lines, apt's progress) goes to a log that is shown only on
# failure, unless UPGRADEGUARD_TESTBED_VERBOSE is set.
run() {
	local label=$1 dir=$2
	shift 2
	local cmd="$*"
	((${#cmd} <= 160)) || cmd="${cmd:0:157}..."
	local logf="$WORK/last.log" rc=0
	# In the background + wait, so that a signal to this script runs its trap
	# at once (the trap stops the command) instead of after a long build.
	if [[ -n "${UPGRADEGUARD_TESTBED_VERBOSE:-}" ]]; then
		(cd "$dir" && exec "$@") &
	else
		(cd "$dir" && exec "$@") >"$logf" 2>&1 &
	fi
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	if ((rc != 0)); then
		if [[ -z "${UPGRADEGUARD_TESTBED_VERBOSE:-}" ]]; then
			printf -- '--- last 60 lines of output ---\n' >&2
			tail -n 60 -- "$logf" >&2
		fi
		die "$label: failed (exit $rc): $cmd"
	fi
}

# smoke BIN ARGS... : the fresh binary must at least print its version.
smoke() {
	local bin=$1
	shift
	"$bin" "$@" >/dev/null 2>&1 || die "$(basename "$bin") $* failed right after the build"
}

# ---------------------------------------------------------------------------
# etcd: go install refuses it (its go.mod replaces siblings with ../ paths),
# so build it from a throw-away module.
build_etcd() {
	local key="etcd-$ETCD_VERSION" v=$ETCD_VERSION
	if complete "$CACHE/$key" etcd; then
		log "etcd $v: cached"
		return
	fi
	need_go
	begin "$key"
	local m="$WORK/etcd"
	mkdir -p "$m"
	cat >"$m/go.mod" <<-EOF
		module upgradeguard.local/testbed/etcdbuild

		go 1.24

		require go.etcd.io/etcd/server/v3 $v

		replace (
			go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $v
			go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $v
			go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $v
			go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $v
		)
	EOF
	cat >"$m/tools.go" <<-'EOF'
		//go:build tools

		package tools

		import _ "go.etcd.io/etcd/server/v3"
	EOF
	run "etcd $v" "$m" go mod tidy
	run "etcd $v" "$m" go build "${GO_BUILD_FLAGS[@]}" -ldflags="$GO_LDFLAGS_BASE" \
		-o "$OUT/etcd" go.etcd.io/etcd/server/v3
	smoke "$OUT/etcd" --version
	commit "$key" "etcd $v"
}

# ---------------------------------------------------------------------------
# Kubernetes control plane: k8s.io/kubernetes replaces its staging modules
# with ./staging paths, so a throw-away module requires it and replaces each
# staging module by its published v0.X.Y.
build_kubernetes() {
	local key="kubernetes-$KUBERNETES_VERSION" v=$KUBERNETES_VERSION
	local bins=(kube-apiserver kube-controller-manager kube-scheduler)
	if complete "$CACHE/$key" "${bins[@]}"; then
		log "kubernetes $v: cached"
		return
	fi
	need_go
	begin "$key"
	local staging_v="v0.${v#v1.}"
	local kdir
	kdir="$(moddir "k8s.io/kubernetes@$v")"
	local kgomod="$kdir/go.mod"
	[[ -f "$kgomod" ]] || die "kubernetes $v: $kgomod not found"
	local staging
	staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$kgomod" | sort -u)"
	[[ -n "$staging" ]] || die "kubernetes $v: found no staging replaces in $kgomod"
	local goline
	goline="$(sed -n 's/^go[[:space:]]\{1,\}\([0-9.]*\).*/\1/p' "$kgomod" | head -n1)"

	local m="$WORK/kubernetes"
	mkdir -p "$m"
	{
		printf 'module upgradeguard.local/testbed/k8sbuild\n\ngo %s\n\n' "${goline:-1.26}"
		printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$v"
		local s
		for s in $staging; do
			printf '\t%s => %s %s\n' "$s" "$s" "$staging_v"
		done
		printf ')\n'
	} >"$m/go.mod"
	{
		printf '//go:build tools\n\npackage tools\n\nimport (\n'
		local b
		for b in "${bins[@]}"; do
			printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"
		done
		printf ')\n'
	} >"$m/tools.go"
	run "kubernetes $v" "$m" go mod tidy

	# What hack/lib/version.sh stamps into release binaries.
	local major minor ld="" pkg
	major="${v#v}"
	major="${major%%.*}"
	minor="${v#v*.}"
	minor="${minor%%.*}"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		ld+=" -X $pkg.gitTreeState=clean"
	done
	local pkgs=() b
	for b in "${bins[@]}"; do
		pkgs+=("k8s.io/kubernetes/cmd/$b")
	done
	run "kubernetes $v" "$m" go build "${GO_BUILD_FLAGS[@]}" -ldflags="$GO_LDFLAGS_BASE$ld" \
		-o "$OUT/" "${pkgs[@]}"
	for b in "${bins[@]}"; do
		[[ -s "$OUT/$b" ]] || die "kubernetes $v: $b was not produced"
		smoke "$OUT/$b" --version
	done
	commit "$key" "kubernetes $v"
}

# ---------------------------------------------------------------------------
# kwok: go install works as is; its stages ship in the module.
build_kwok() {
	local key="kwok-$KWOK_VERSION" v=$KWOK_VERSION
	if complete "$CACHE/$key" kwok stages.yaml; then
		log "kwok $v: cached"
		return
	fi
	need_go
	begin "$key"
	run "kwok $v" "$WORK" env GOBIN="$OUT" go install "${GO_BUILD_FLAGS[@]}" \
		-ldflags="$GO_LDFLAGS_BASE" "sigs.k8s.io/kwok/cmd/kwok@$v"
	local kdir
	kdir="$(moddir "sigs.k8s.io/kwok@$v")"
	local st="$kdir/kustomize/stage"
	local stages=(
		node/fast/node-initialize.yaml
		node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
		pod/fast/pod-ready.yaml
		pod/fast/pod-complete.yaml
		pod/fast/pod-delete.yaml
	)
	local f first=1
	for f in "${stages[@]}"; do
		[[ -f "$st/$f" ]] || die "kwok $v: stage file $st/$f not found"
		if [[ -z "$first" ]]; then
			printf -- '---\n'
		fi
		first=""
		cat -- "$st/$f"
		# Make sure the next separator starts on its own line.
		[[ -z "$(tail -c1 -- "$st/$f")" ]] || printf '\n'
	done >"$OUT/stages.yaml"
	smoke "$OUT/kwok" --version
	commit "$key" "kwok $v"
}

# ---------------------------------------------------------------------------
# thanos: go install fails (replace directives); build from a writable copy of
# the module source with its own go.mod/go.sum. slicelabels is essential.
build_thanos() {
	local key="thanos-$THANOS_VERSION" v=$THANOS_VERSION
	if complete "$CACHE/$key" thanos; then
		log "thanos $v: cached"
		return
	fi
	need_go
	begin "$key"
	local src
	src="$(moddir "github.com/thanos-io/thanos@$v")"
	local m="$WORK/thanos"
	cp -R -- "$src" "$m"
	chmod -R u+w -- "$m"
	local pv="github.com/prometheus/common/version"
	run "thanos $v" "$m" go build "${GO_BUILD_FLAGS[@]}" -tags slicelabels,netgo \
		-ldflags="$GO_LDFLAGS_BASE -X $pv.Version=${v#v} -X $pv.Branch=HEAD -X $pv.BuildUser=upgradeguard-testbed" \
		-o "$OUT/thanos" ./cmd/thanos
	smoke "$OUT/thanos" --version
	commit "$key" "thanos $v"
}

# ---------------------------------------------------------------------------
# Karpenter, kwok provider (./kwok, a fake cloud provider whose nodes carry
# kwok.x-k8s.io/node=fake): built from a writable copy of the module source.
# Its go.mod asks for a newer Go than the machine's, so that one build runs
# with GOTOOLCHAIN set (the go command fetches the toolchain from the module
# proxy) and -mod=mod. The CRDs it needs ship in the module and are cached
# next to the binary.
build_karpenter() {
	local key="karpenter-$KARPENTER_VERSION" v=$KARPENTER_VERSION
	local crds=(
		karpenter.sh_nodepools.yaml
		karpenter.sh_nodeclaims.yaml
		karpenter.sh_nodeoverlays.yaml
		karpenter.kwok.sh_kwoknodeclasses.yaml
	)
	local want=(karpenter-kwok) c
	for c in "${crds[@]}"; do
		want+=("crds/$c")
	done
	if complete "$CACHE/$key" "${want[@]}"; then
		log "karpenter $v (kwok provider): cached"
		return
	fi
	need_go
	begin "$key"
	local src
	# go mod download refuses the module too under the machine's Go
	# ("requires go >= 1.26.9"; GOTOOLCHAIN=local).
	src="$(GOTOOLCHAIN="$KARPENTER_GOTOOLCHAIN" moddir "sigs.k8s.io/karpenter@$v")"
	local m="$WORK/karpenter"
	cp -R -- "$src" "$m"
	chmod -R u+w -- "$m"
	mkdir -p -- "$OUT/crds"
	local f
	for f in "$m"/pkg/apis/crds/*.yaml "$m/kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml"; do
		[[ -f "$f" ]] || die "karpenter $v: CRD file $f not found"
		cp -- "$f" "$OUT/crds/"
	done
	for c in "${crds[@]}"; do
		[[ -s "$OUT/crds/$c" ]] || die "karpenter $v: CRD $c not found in the module"
	done
	run "karpenter $v" "$m" env GOTOOLCHAIN="$KARPENTER_GOTOOLCHAIN" GOFLAGS=-mod=mod \
		go build "${GO_BUILD_FLAGS[@]}" -ldflags="$GO_LDFLAGS_BASE -X sigs.k8s.io/karpenter/pkg/operator.Version=$v" \
		-o "$OUT/karpenter-kwok" ./kwok
	# -h parses the flags and exits 0 before any cluster access.
	smoke "$OUT/karpenter-kwok" -h
	commit "$key" "karpenter $v (kwok provider)"
}

# ---------------------------------------------------------------------------
# prometheus, promtool: Debian package. Its maintainer scripts would start a
# daemon on :9090 where an init system runs (invoke-rc.d / systemd); a
# temporary policy-rc.d forbids that during the install, and any daemon that
# was started anyway is stopped afterwards.
install_prometheus() {
	if [[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]]; then
		log "prometheus (debian): cached"
		return
	fi
	if [[ $(id -u) -ne 0 && -z "$SUDO" ]]; then
		die "prometheus: /usr/bin/prometheus is missing and installing it needs root (or sudo)"
	fi
	command -v apt-get >/dev/null 2>&1 ||
		die "prometheus: /usr/bin/prometheus is missing and apt-get is not available"
	local start=$SECONDS
	need_work
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\n# temporary, from upgradeguard internal/testbed/deps.sh\nexit 101\n' |
			$SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 0755 /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=1
	fi
	run prometheus / $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
	run prometheus / $SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "$PROMETHEUS_DEB"
	if [[ -n "$POLICY_RC_CREATED" ]]; then
		$SUDO rm -f /usr/sbin/policy-rc.d
		POLICY_RC_CREATED=""
	fi
	# Do not leave the packaged daemon holding :9090.
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		if systemctl is-active --quiet prometheus.service 2>/dev/null; then
			$SUDO systemctl stop prometheus.service || true
		fi
		$SUDO systemctl disable prometheus.service >/dev/null 2>&1 || true
	fi
	if [[ -s /run/prometheus/prometheus.pid ]]; then
		local pid
		pid="$(cat /run/prometheus/prometheus.pid)"
		if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
			$SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || $SUDO kill "$pid" || true
		fi
	fi
	[[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]] ||
		die "prometheus: installed $PROMETHEUS_DEB but /usr/bin/prometheus or /usr/bin/promtool is missing"
	log "prometheus (debian): built in $((SECONDS - start))s (apt-get install $PROMETHEUS_DEB)"
}

build_etcd
build_kubernetes
build_kwok
build_thanos
build_karpenter
install_prometheus

log "UPGRADEGUARD_TESTBED_CACHE=$CACHE"
