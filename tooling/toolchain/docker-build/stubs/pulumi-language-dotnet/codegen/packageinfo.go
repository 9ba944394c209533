// Package codegen stands in for the .NET code generator: pulumi-docker-build only uses its
// package-info type to write the "csharp" entry of its schema's language section.
package codegen

// CSharpPackageInfo is the "csharp" language entry of a package schema. Fields and JSON names
// follow the entry in pulumi-docker-build's published schema.json.
type CSharpPackageInfo struct {
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
}
