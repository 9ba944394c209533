// Package java stands in for the Java code generator: pulumi-docker-build only uses its
// package-info type to write the "java" entry of its schema's language section.
package java

// PackageInfo is the "java" language entry of a package schema. Fields and JSON names follow
// the entry in pulumi-docker-build's published schema.json, where the empty strings appear too.
type PackageInfo struct {
	BasePackage                     string            `json:"basePackage"`
	BuildFiles                      string            `json:"buildFiles"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion"`
	GradleTest                      string            `json:"gradleTest"`
}
