// The reference CNI plugins vnet-ipam ships and tests with, built from source by
// scripts/build-cni-plugins.sh: loopback and portmap go into the image (the agent's install-cni
// puts them on every node: containerd runs loopback for each sandbox, the agent's conflist chains
// portmap), and ptp and host-local are what the e2e tests and the benchmarks compare against.
//
// Pinned here, not taken from Debian: Debian 12's containernetworking-plugins (1.1.1) speaks CNI
// spec 1.0.0 at most, and a conflist has one cniVersion for all its plugins, so chaining it kept
// the agent's conflist at 1.0.0, where runtimes send neither GC nor STATUS. This release speaks 1.1.0
// (the build script checks each binary's VERSION answer); go.sum pins every module's checksum.
module vnet-ipam/scripts/cni-plugins

go 1.24.2

tool (
	github.com/containernetworking/plugins/plugins/ipam/host-local
	github.com/containernetworking/plugins/plugins/main/loopback
	github.com/containernetworking/plugins/plugins/main/ptp
	github.com/containernetworking/plugins/plugins/meta/portmap
)

require (
	github.com/alexflint/go-filemutex v1.3.0 // indirect
	github.com/containernetworking/cni v1.3.0 // indirect
	github.com/containernetworking/plugins v1.9.1 // indirect
	github.com/coreos/go-iptables v0.8.0 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/safchain/ethtool v0.6.2 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.35.0 // indirect
	sigs.k8s.io/knftables v0.0.18 // indirect
)
