// Stand-in for the .NET language host module, which the module proxy does not serve (see
// ../../go.mod). It provides only the type pulumi-docker-build's provider uses.
module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3

go 1.24
