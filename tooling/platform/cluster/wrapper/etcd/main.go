// Command etcd is the etcd server. Its upstream main lives in the root module go.etcd.io/etcd/v3,
// whose go.mod replaces its sibling modules by local paths; this main calls etcdmain.Main from
// the published server module instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
