#!/bin/bash
# kube-cluster.sh — a real single-node Kubernetes for `npm run rehearse:kube`, built only from package
# registries (Debian apt + the Go module proxy). No image registry: the pause image and workload
# images are made locally and imported into containerd (pods use imagePullPolicy: Never).
#
# Derived from ../shared/design/recipes/kubernetes-local.sh (verified on this kind of machine,
# 2026-12-01); the facts it encodes are in ../shared/design/INFRA.md. Changes: binaries and images are
# cached by version under ${INFERBENCH_CACHE:-$HOME/.cache/inferbench} (built under *.partial and
# renamed, so an interrupted build is redone), cluster state lives apart from them, names say ib-.
#
#   kube-cluster.sh build            install packages, build binaries + images (cached)
#   kube-cluster.sh up               build (cached), certs, start everything, wait until Ready
#   kube-cluster.sh down             stop every process this script started (by PID file), unmount, clean net
#   kube-cluster.sh status           pids/rss and node status
#   kube-cluster.sh import-image TAR import a docker-save tarball for pods
#   kube-cluster.sh kubeconfig       print the admin kubeconfig's path
#   kube-cluster.sh egress-drops     packets the uplink drop rules stopped (a rehearsal checks it stays 0)
#   kube-cluster.sh purge            down + remove cluster state (keeps binaries and images)
#
# This machine needs (INFRA.md): containerd CRI restrict_oom_score_adj (no CAP_SYS_RESOURCE), kubelet
# cgroupfs + failCgroupV1: false, port-less bridges (no CONFIG_DUMMY), kube-proxy iptables mode, and
# drop rules so nothing a pod sends leaves the machine.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$HERE/common.sh"

K8S_VERSION=v1.34.4          # k8s.io/kubernetes module version (the cache key names it)
STAGING_VERSION=v0.34.4      # k8s.io/* staging modules
COREDNS_VERSION=v1.13.1
KUBE_CACHE=$CACHE/k8s-$K8S_VERSION-coredns-$COREDNS_VERSION
BIN=$KUBE_CACHE/bin
IMAGES=$KUBE_CACHE/images
ST=${INFERBENCH_KUBE_STATE:-/var/tmp/inferbench-kube}   # cluster state (etcd, containerd, kubelet, logs)
PKI=$ST/pki
LOG=$ST/logs
PIDS=$ST/pids
RUN=$ST/run
# Fixed names and ranges, not read from the environment: npm sets NODE (the node binary) for
# every script it runs, and a generic name like that must not rename the node.
NODE=ib-node
NODE_IP=10.87.0.1          # on port-less bridge ib-node0
POD_CIDR=10.88.0.0/16      # on bridge ib-cni0
POD_GW=10.88.0.1
SVC_CIDR=10.96.0.0/16      # routed into port-less bridge ib-svc0
SVC_API_IP=10.96.0.1
DNS_IP=10.96.0.10
CNI_BIN=/usr/lib/cni
export GOMODCACHE=$GO_CACHE_DIR/mod GOCACHE=$GO_CACHE_DIR/build GOTOOLCHAIN=local
export GOFLAGS=-mod=mod
export PATH=$BIN:/usr/local/go/bin:$PATH
CTR="ctr --address $RUN/containerd.sock -n k8s.io"
KC="kubectl --kubeconfig $ST/admin.kubeconfig"

ts() { date +%s.%N | cut -c1-14; }

# ---------------------------------------------------------------- packages
install_pkgs() {
  local need=()
  for c in containerd runc etcd openssl iptables conntrack socat debootstrap busybox; do
    command -v $c >/dev/null 2>&1 || need+=(1)
  done
  [ -x $CNI_BIN/bridge ] || need+=(1)
  if [ ${#need[@]} -gt 0 ]; then
    log "apt: installing packages"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd runc containernetworking-plugins \
      etcd-server etcd-client iptables conntrack socat busybox-static debootstrap openssl python3 >/dev/null
  fi
}

# ---------------------------------------------------------------- kubernetes binaries
build_bins() {
  local want="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
  local missing=0
  for b in $want; do [ -x $BIN/$b ] || missing=1; done
  [ $missing = 0 ] && return
  local W=$CACHE/k8s-build-$K8S_VERSION P=$BIN.partial
  rm -rf "$P"; mkdir -p "$W" "$P"
  cd "$W"
  log "go: fetching k8s.io/kubernetes@$K8S_VERSION"
  go mod download k8s.io/kubernetes@$K8S_VERSION
  local M=$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
  { echo "module inferbench.rehearsal/k8sbuild"; echo; echo "go 1.24.0"; echo
    echo "require k8s.io/kubernetes $K8S_VERSION"; echo; echo "replace ("
    for m in $(grep -E '=> \./staging' $M | awk '{print $1}'); do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"; } > go.mod
  cat > tools.go <<'EOF'
//go:build tools
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  go mod tidy -e >/dev/null 2>&1
  local minor; minor=$(echo $K8S_VERSION | cut -d. -f2)
  local LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  log "go: building kubernetes $K8S_VERSION (nice 19, this is the slow part)"
  CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags="$LD" -o "$P/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
  rm -rf "$BIN" && mv "$P" "$BIN"
  cd - >/dev/null
}

# ---------------------------------------------------------------- images (no registry)
write_mkimage() {
  mkdir -p $IMAGES
  cat > $IMAGES/mkimage.py <<'EOF'
#!/usr/bin/env python3
"""mkimage.py ROOTFS_DIR REF OUT.tar [--cmd JSON] [--entrypoint JSON] [--env K=V ...]
Packs a directory into a single-layer image tarball (docker-save format) that
`ctr -n k8s.io images import` accepts. No daemon, no registry."""
import argparse, hashlib, io, json, os, tarfile, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("rootfs"); ap.add_argument("ref"); ap.add_argument("out")
ap.add_argument("--cmd", default='["/bin/sh"]')
ap.add_argument("--entrypoint", default=None)
ap.add_argument("--env", action="append", default=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
ap.add_argument("--workdir", default="/")
a = ap.parse_args()

with tempfile.TemporaryFile() as layer:
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(a.rootfs)):
            t.add(os.path.join(a.rootfs, name), arcname=name, recursive=True)
    layer.seek(0)
    h = hashlib.sha256()
    for chunk in iter(lambda: layer.read(1 << 20), b""):
        h.update(chunk)
    diff = h.hexdigest(); size = layer.tell(); layer.seek(0)
    cfg = {"architecture": "amd64", "os": "linux",
           "config": {"Env": a.env, "Cmd": json.loads(a.cmd), "WorkingDir": a.workdir},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]},
           "history": [{"created_by": "mkimage.py"}]}
    if a.entrypoint:
        cfg["config"]["Entrypoint"] = json.loads(a.entrypoint)
    cfgb = json.dumps(cfg).encode(); cid = hashlib.sha256(cfgb).hexdigest()
    manifest = [{"Config": cid + ".json", "RepoTags": [a.ref], "Layers": [diff + "/layer.tar"]}]
    with tarfile.open(a.out, "w") as out:
        def addbytes(name, b):
            ti = tarfile.TarInfo(name); ti.size = len(b); out.addfile(ti, io.BytesIO(b))
        addbytes(cid + ".json", cfgb)
        ti = tarfile.TarInfo(diff + "/layer.tar"); ti.size = size; out.addfile(ti, layer)
        addbytes("manifest.json", json.dumps(manifest).encode())
print(a.out, a.ref)
EOF
  chmod +x $IMAGES/mkimage.py
}

make_images() {
  write_mkimage
  local I=$IMAGES
  if [ ! -f $I/pause.tar ]; then
    log "image: localhost/pause:inferbench (static Go sandbox process)"
    mkdir -p $I/pause && cd $I/pause
    cat > main.go <<'EOF'
// Minimal pod sandbox ("pause") process: sleeps until SIGINT/SIGTERM, reaps zombies.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
EOF
    printf 'module inferbench.rehearsal/pause\n\ngo 1.24\n' > go.mod
    CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags='-s -w' -o pause .
    rm -rf $I/pause-root && mkdir -p $I/pause-root && cp pause $I/pause-root/pause
    python3 $I/mkimage.py $I/pause-root localhost/pause:inferbench $I/pause.tar --cmd '["/pause"]' >/dev/null
    cd - >/dev/null
  fi
  if [ ! -f $I/busybox.tar ]; then
    log "image: localhost/busybox:inferbench (Debian busybox-static: sh, httpd, wget, nc, tar)"
    rm -rf $I/bb-root && mkdir -p $I/bb-root/{bin,etc,tmp,var/www,root,proc,sys,dev}
    cp /bin/busybox $I/bb-root/bin/busybox
    for a in $($I/bb-root/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox $I/bb-root/bin/$a; done
    echo 'root:x:0:0:root:/root:/bin/sh' > $I/bb-root/etc/passwd; echo 'root:x:0:' > $I/bb-root/etc/group
    echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> $I/bb-root/etc/passwd
    chmod 1777 $I/bb-root/tmp
    echo 'hello from busybox httpd' > $I/bb-root/var/www/index.html
    python3 $I/mkimage.py $I/bb-root localhost/busybox:inferbench $I/busybox.tar --cmd '["/bin/sh"]' >/dev/null
  fi
}

make_coredns_image() {
  local I=$IMAGES
  [ -f $I/coredns.tar ] && return
  log "image: localhost/coredns:inferbench (CoreDNS v1.13.1 built from the Go module proxy, cluster zone only)"
  mkdir -p $I/coredns-src && cd $I/coredns-src
  cat > main.go <<'EOF'
// Minimal CoreDNS for cluster DNS: only the plugins a test cluster needs, no forwarding.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() { coremain.Run() }
EOF
  cat > go.mod <<EOF
module inferbench.rehearsal/coredns

go 1.24.0

require (
	github.com/coredns/coredns v1.13.1
	k8s.io/api $STAGING_VERSION
	k8s.io/apimachinery $STAGING_VERSION
	k8s.io/client-go $STAGING_VERSION
)
EOF
  go mod tidy >/dev/null 2>&1
  CGO_ENABLED=0 nice -n 19 go build -trimpath -ldflags='-s -w' -o coredns .
  rm -rf $I/coredns-root && mkdir -p $I/coredns-root/tmp && cp coredns $I/coredns-root/coredns && chmod 1777 $I/coredns-root/tmp
  python3 $I/mkimage.py $I/coredns-root localhost/coredns:inferbench $I/coredns.tar --cmd '[]' --entrypoint '["/coredns"]' >/dev/null
  cd - >/dev/null
}

deploy_coredns() {
  $KC apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      terminationGracePeriodSeconds: 5
      containers:
      - name: coredns
        image: localhost/coredns:inferbench
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
  $KC -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null
}

import_images() {
  for t in $IMAGES/pause.tar $IMAGES/busybox.tar $IMAGES/coredns.tar $IMAGES/extra/*.tar; do
    [ -f "$t" ] || continue
    $CTR images import --no-unpack=false "$t" >/dev/null 2>&1 || $CTR images import "$t" >/dev/null
  done
}

# ---------------------------------------------------------------- PKI
mkcert() { # name CN O [SANs]
  local n=$1 cn=$2 o=$3 san=${4:-}
  [ -f $PKI/$n.crt ] && return
  openssl genrsa -out $PKI/$n.key 2048 2>/dev/null
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o/CN=$cn"
  openssl req -new -key $PKI/$n.key -subj "$subj" -out $PKI/$n.csr 2>/dev/null
  local ext=$PKI/$n.ext
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } > $ext
  openssl x509 -req -in $PKI/$n.csr -CA $PKI/ca.crt -CAkey $PKI/ca.key -CAcreateserial \
    -days 3650 -sha256 -extfile $ext -out $PKI/$n.crt 2>/dev/null
  rm -f $PKI/$n.csr $PKI/$n.ext
}

kubeconfig() { # file user cert   (certs embedded: the file can be copied anywhere, e.g. a Pulumi provider config)
  local f=$1 u=$2 c=$3
  [ -f $f ] && return
  cat > $f <<EOF
apiVersion: v1
kind: Config
clusters:
- name: feas
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 $PKI/ca.crt)
users:
- name: $u
  user:
    client-certificate-data: $(base64 -w0 $PKI/$c.crt)
    client-key-data: $(base64 -w0 $PKI/$c.key)
contexts:
- name: feas
  context: {cluster: feas, user: $u}
current-context: feas
EOF
  chmod 600 $f
}

make_pki() {
  mkdir -p $PKI
  if [ ! -f $PKI/ca.crt ]; then
    openssl genrsa -out $PKI/ca.key 2048 2>/dev/null
    openssl req -x509 -new -key $PKI/ca.key -subj "/CN=feas-ca" -days 3650 -sha256 -out $PKI/ca.crt 2>/dev/null
  fi
  mkcert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$SVC_API_IP,IP:$NODE_IP"
  mkcert kubelet-serving $NODE "" "DNS:$NODE,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  mkcert admin kubernetes-admin system:masters
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  mkcert controller-manager system:kube-controller-manager ""
  mkcert scheduler system:kube-scheduler ""
  mkcert kube-proxy system:kube-proxy ""
  mkcert kubelet system:node:$NODE system:nodes
  [ -f $PKI/sa.key ] || { openssl genrsa -out $PKI/sa.key 2048 2>/dev/null; openssl rsa -in $PKI/sa.key -pubout -out $PKI/sa.pub 2>/dev/null; }
  kubeconfig $ST/admin.kubeconfig kubernetes-admin admin
  kubeconfig $ST/controller-manager.kubeconfig system:kube-controller-manager controller-manager
  kubeconfig $ST/scheduler.kubeconfig system:kube-scheduler scheduler
  kubeconfig $ST/kube-proxy.kubeconfig system:kube-proxy kube-proxy
  kubeconfig $ST/kubelet.kubeconfig system:node:$NODE kubelet
}

# ---------------------------------------------------------------- network (all local)
net_up() {
  ip link show ib-node0 >/dev/null 2>&1 || { ip link add ib-node0 type bridge; ip addr add $NODE_IP/32 dev ib-node0; }
  ip link set ib-node0 up
  ip link show ib-svc0 >/dev/null 2>&1 || ip link add ib-svc0 type bridge
  ip link set ib-svc0 up
  # un-DNATed ClusterIP traffic falls into the dummy device and dies there
  ip route replace $SVC_CIDR dev ib-svc0
  # pod bridge (the CNI bridge plugin reuses it)
  ip link show ib-cni0 >/dev/null 2>&1 || { ip link add ib-cni0 type bridge; ip addr add $POD_GW/16 dev ib-cni0; }
  ip link set ib-cni0 up
  [ -f $ST/ip_forward.prev ] || sysctl -n net.ipv4.ip_forward > $ST/ip_forward.prev
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # safety net: nothing from pods or to the service range is forwarded to the uplink
  local up; up=$(ip route show default | awk '{print $5; exit}')
  if [ -n "$up" ]; then
    iptables -C FORWARD -s $POD_CIDR -o $up -j DROP 2>/dev/null || iptables -I FORWARD -s $POD_CIDR -o $up -j DROP
    iptables -C OUTPUT -d $SVC_CIDR -o $up -j DROP 2>/dev/null || iptables -I OUTPUT -d $SVC_CIDR -o $up -j DROP
    iptables -C OUTPUT -d $POD_CIDR -o $up -j DROP 2>/dev/null || iptables -I OUTPUT -d $POD_CIDR -o $up -j DROP
    echo $up > $ST/uplink
  fi
}

net_down() {
  local up; up=$(cat $ST/uplink 2>/dev/null || true)
  if [ -n "$up" ]; then
    iptables -D FORWARD -s $POD_CIDR -o $up -j DROP 2>/dev/null || true
    iptables -D OUTPUT -d $SVC_CIDR -o $up -j DROP 2>/dev/null || true
    iptables -D OUTPUT -d $POD_CIDR -o $up -j DROP 2>/dev/null || true
  fi
  # kube-proxy's own cleanup of its iptables chains
  [ -x $BIN/kube-proxy ] && $BIN/kube-proxy --cleanup >/dev/null 2>&1 || true
  # CNI-* chains left by the portmap/bridge plugins
  for t in nat filter; do
    for c in $(iptables -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do
      iptables -t $t -S | awk -v c=$c '$1=="-A" && $0 ~ "-j "c"( |$)" {sub("^-A","-D"); print}' | while read -r r; do eval iptables -t $t $r 2>/dev/null || true; done
    done
    for c in $(iptables -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do iptables -t $t -F $c 2>/dev/null || true; done
    for c in $(iptables -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}'); do iptables -t $t -X $c 2>/dev/null || true; done
  done
  # kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) survive kube-proxy --cleanup
  local ipt
  for ipt in iptables ip6tables; do
    for t in filter nat mangle; do
      for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do
        $ipt -t $t -S | awk -v c=$c '$1=="-A" && $0 ~ "-j "c"( |$)" {sub("^-A","-D"); print}' | while read -r r; do eval $ipt -t $t $r 2>/dev/null || true; done
      done
      for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -F $c 2>/dev/null || true; done
      for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -X $c 2>/dev/null || true; done
    done
  done
  for l in ib-cni0 ib-svc0 ib-node0; do ip link del $l 2>/dev/null || true; done
  if [ -f $ST/ip_forward.prev ]; then sysctl -qw net.ipv4.ip_forward=$(cat $ST/ip_forward.prev); rm -f $ST/ip_forward.prev; fi
  # veths of pods die with their netns; remove leftover CNI netns
  for n in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns del $n 2>/dev/null || true; done
}

# ---------------------------------------------------------------- process helpers
our_shims() { # containerd-shim-runc-v2 processes that belong to *our* containerd (matched by socket path)
  local p
  for p in $(pgrep containerd-shim 2>/dev/null || true); do
    tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q -- "$RUN/containerd.sock" && echo $p
  done
}

start() { # name cmd...
  local n=$1; shift
  if [ -f $PIDS/$n.pid ] && kill -0 "$(cat $PIDS/$n.pid)" 2>/dev/null; then return; fi
  setsid nohup "$@" > $LOG/$n.log 2>&1 < /dev/null &
  echo $! > $PIDS/$n.pid
}

wait_for() { # desc seconds cmd...
  local d=$1 s=$2; shift 2
  local i
  for i in $(seq 1 $((s*4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timeout waiting for $d" >&2; return 1
}

# ---------------------------------------------------------------- config files
write_configs() {
  mkdir -p $ST/containerd/root $ST/containerd/state $ST/cni/net.d $ST/cni/ipam $ST/kubelet $ST/pod-logs
  cat > $ST/containerd/config.toml <<EOF
version = 2
root = "$ST/containerd/root"
state = "$ST/containerd/state"
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:inferbench"
  enable_cdi = false
  # this sandbox lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (sandbox wants -998)
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$ST/cni/net.d"
EOF
  cat > $ST/cni/net.d/10-feas.conflist <<EOF
{
  "cniVersion": "1.0.0",
  "name": "feas",
  "plugins": [
    {"type": "bridge", "bridge": "ib-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$ST/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GW"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat > $ST/kubelet/config.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$RUN/containerd.sock
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $ST/kubelet/resolv.conf
podLogsDir: $ST/pod-logs
registerNode: true
maxPods: 110
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
cgroupsPerQOS: ${CGROUPS_PER_QOS:-true}
enforceNodeAllocatable: ${ENFORCE_NA:-[pods]}
localStorageCapacityIsolation: true
EOF
  # pods get no upstream resolver (no traffic may leave the machine)
  echo "# no upstream" > $ST/kubelet/resolv.conf
}

# ---------------------------------------------------------------- start the cluster
up() {
  local T0; T0=$(date +%s.%N)
  install_pkgs
  build_bins
  make_images
  [ "${WITH_DNS:-1}" = 1 ] && make_coredns_image
  mkdir -p $ST $LOG $PIDS $RUN
  make_pki
  write_configs
  net_up
  local T1; T1=$(date +%s.%N)

  log "start etcd"
  start etcd etcd --name feas --data-dir $ST/etcd \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster feas=http://127.0.0.1:2380 --quota-backend-bytes 2147483648
  start containerd containerd --config $ST/containerd/config.toml
  wait_for etcd 30 etcdctl --endpoints http://127.0.0.1:2379 endpoint health

  log "start kube-apiserver"
  start kube-apiserver kube-apiserver \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address=$NODE_IP \
    --service-cluster-ip-range=$SVC_CIDR --service-node-port-range=30000-32767 \
    --client-ca-file=$PKI/ca.crt --tls-cert-file=$PKI/apiserver.crt --tls-private-key-file=$PKI/apiserver.key \
    --kubelet-client-certificate=$PKI/apiserver-kubelet-client.crt --kubelet-client-key=$PKI/apiserver-kubelet-client.key \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file=$PKI/sa.pub --service-account-signing-key-file=$PKI/sa.key \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false --event-ttl=1h
  wait_for kube-apiserver 120 $KC get --raw /readyz

  log "start controller-manager, scheduler, kubelet, kube-proxy"
  start kube-controller-manager kube-controller-manager \
    --kubeconfig=$ST/controller-manager.kubeconfig \
    --authentication-kubeconfig=$ST/controller-manager.kubeconfig --authorization-kubeconfig=$ST/controller-manager.kubeconfig \
    --bind-address=127.0.0.1 --leader-elect=false \
    --service-account-private-key-file=$PKI/sa.key --root-ca-file=$PKI/ca.crt \
    --cluster-signing-cert-file=$PKI/ca.crt --cluster-signing-key-file=$PKI/ca.key \
    --use-service-account-credentials=true --service-cluster-ip-range=$SVC_CIDR \
    --cluster-cidr=$POD_CIDR --allocate-node-cidrs=false --profiling=false
  start kube-scheduler kube-scheduler --kubeconfig=$ST/scheduler.kubeconfig \
    --authentication-kubeconfig=$ST/scheduler.kubeconfig --authorization-kubeconfig=$ST/scheduler.kubeconfig \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false
  wait_for containerd 30 $CTR version
  import_images
  start kubelet kubelet --config=$ST/kubelet/config.yaml --kubeconfig=$ST/kubelet.kubeconfig \
    --root-dir=$ST/kubelet/root --hostname-override=$NODE --node-ip=$NODE_IP -v=1
  start kube-proxy kube-proxy --kubeconfig=$ST/kube-proxy.kubeconfig --hostname-override=$NODE \
    --proxy-mode=iptables --cluster-cidr=$POD_CIDR --conntrack-max-per-core=0 \
    --bind-address=127.0.0.1 --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 \
    --nodeport-addresses=$NODE_IP/32
  wait_for node-ready 180 sh -c "$KC get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  # wait for the default ServiceAccount (pods can't be created before it exists)
  wait_for default-sa 60 $KC get serviceaccount default -n default
  local T2; T2=$(date +%s.%N)
  if [ "${WITH_DNS:-1}" = 1 ]; then deploy_coredns; log "CoreDNS ready at $DNS_IP"; fi
  local T3; T3=$(date +%s.%N)
  log "cluster Ready (node Ready $(awk -v a=$T1 -v b=$T2 'BEGIN{printf "%.1f", b-a}')s, +DNS $(awk -v a=$T1 -v b=$T3 'BEGIN{printf "%.1f", b-a}')s after start)"
  log "cluster Ready: prep $(awk -v a=$T0 -v b=$T1 'BEGIN{printf "%.1f", b-a}')s, start->Ready $(awk -v a=$T1 -v b=$T2 'BEGIN{printf "%.1f", b-a}')s"
  log "export KUBECONFIG=$ST/admin.kubeconfig"
}

# ---------------------------------------------------------------- teardown
stop_pid() { # name
  local f=$PIDS/$1.pid p
  [ -f $f ] || return 0
  p=$(cat $f)
  if kill -0 $p 2>/dev/null; then
    kill -TERM $p 2>/dev/null || true
    local i; for i in $(seq 1 40); do kill -0 $p 2>/dev/null || break; sleep 0.25; done
    kill -0 $p 2>/dev/null && kill -KILL $p 2>/dev/null || true
  fi
  rm -f $f
}

down() {
  # let the runtime tear down pods first (graceful), then stop the node agents
  if [ -f $PIDS/containerd.pid ] && kill -0 "$(cat $PIDS/containerd.pid)" 2>/dev/null; then
    stop_pid kubelet
    for c in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s KILL $c >/dev/null 2>&1 || true; done
    sleep 1
    for c in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks delete -f $c >/dev/null 2>&1 || true; done
  fi
  for n in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver containerd etcd; do stop_pid $n; done
  # containerd-shim processes are children re-parented away from containerd: stop the ones rooted in our state
  for p in $(our_shims); do kill -KILL $p 2>/dev/null || true; done
  # unmount anything left under our state dir (pod volumes, overlay rootfs, netns)
  local m
  for m in $(awk -v s="$ST" 'index($2, s)==1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  for m in $(awk '$2 ~ "^/run/netns/cni-" {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  net_down
  # remove the (now empty) cgroups that kubelet/containerd created (cgroup v1 hierarchies)
  local d
  for d in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io -depth -type d 2>/dev/null); do rmdir "$d" 2>/dev/null || true; done
  log "down"
}

status() {
  for f in $PIDS/*.pid; do [ -f "$f" ] || continue; p=$(cat $f); printf '%-24s pid %-7s rss %s KiB\n' "$(basename $f .pid)" $p "$(ps -o rss= -p $p 2>/dev/null || echo dead)"; done
  for p in $(our_shims); do printf '%-24s pid %-7s rss %s KiB\n' shim $p "$(ps -o rss= -p $p)"; done
  $KC get nodes -o wide 2>/dev/null || true
}


case "${1:-up}" in
  up) up ;;
  down) down ;;
  purge) down; rm -rf $ST ;;
  status) status ;;
  build) install_pkgs; build_bins; make_images; make_coredns_image ;;
  import-image) $CTR images import "$2" ;;
  kubeconfig) echo "$ST/admin.kubeconfig" ;;
  bin) echo "$BIN" ;;
  egress-drops) # packets our drop rules stopped on their way off the machine (must stay 0)
    up=$(cat $ST/uplink 2>/dev/null || true); [ -n "$up" ] || { echo 0; exit 0; }
    { iptables -L FORWARD -v -n -x; iptables -L OUTPUT -v -n -x; } 2>/dev/null |
      awk -v up="$up" '$3 == "DROP" && $7 == up {n += $1} END {print n + 0}' ;;
  check) for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do [ -x $BIN/$b ] || exit 1; done
    [ -f $IMAGES/pause.tar ] && [ -f $IMAGES/coredns.tar ] ;;
  *) echo "usage: $0 build|check|up|down|purge|status|kubeconfig|egress-drops|import-image TAR"; exit 2 ;;
esac
