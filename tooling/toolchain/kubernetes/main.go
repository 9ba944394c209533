// Command pulumi-resource-kubernetes serves the Kubernetes provider from the published module.
//
// Upstream's main embeds files produced by its `go generate` step, which the module zip lacks;
// tools/build.sh produces them from the schema.json and terraform-mapping.json that the zip has.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
