// Stand-in for the Java language module, which the module proxy does not serve (see
// ../../go.mod). It provides only the type pulumi-docker-build's provider uses.
module github.com/pulumi/pulumi-java

go 1.24
