// Command schemaembed writes the files that the provider's main embeds, as upstream's
// `go generate` step does: the schema with its version set, and both files compacted.
//
// Usage: go run ./schemaembed VERSION SRC_DIR DEST_DIR
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: schemaembed VERSION SRC_DIR DEST_DIR"))
	}
	version, src, dest := os.Args[1], os.Args[2], os.Args[3]

	// Top-level fields are kept as raw JSON so only "version" changes; upstream stamps the
	// release version here because the checked-in schema carries none.
	var schema map[string]json.RawMessage
	readJSON(filepath.Join(src, "schema.json"), &schema)
	v, err := json.Marshal(version)
	if err != nil {
		fail(err)
	}
	schema["version"] = v
	out, err := json.Marshal(schema)
	if err != nil {
		fail(err)
	}
	write(filepath.Join(dest, "schema-embed.json"), out)

	mapping, err := os.ReadFile(filepath.Join(src, "terraform-mapping.json"))
	if err != nil {
		fail(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, mapping); err != nil {
		fail(fmt.Errorf("terraform-mapping.json: %w", err))
	}
	write(filepath.Join(dest, "terraform-mapping-embed.json"), compact.Bytes())
}

func readJSON(path string, into any) {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
}

func write(path string, data []byte) {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "schemaembed:", err)
	os.Exit(1)
}
