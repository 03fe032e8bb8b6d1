// Command etcd is the upstream etcd server, built from the Go module proxy for
// the e2e tests (see scripts/build-kube.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
