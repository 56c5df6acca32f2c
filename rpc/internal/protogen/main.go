// Command protogen writes the protocol's generated files from the rpc
// package's types and method registry (rpc.Methods): the TypeScript types
// of the VS Code extension, a JSON Schema for other editors' clients, and
// the method and field tables of protocol.md. Run it from the module's
// root, as scripts/genprotocol.sh does; its test fails when a generated
// file is stale.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// Generated files, relative to the module's root.
const (
	tsFile     = "extension/src/protocol.ts"
	schemaFile = "protocol.schema.json"
	mdFile     = "protocol.md"
)

// generate returns every generated file's content, by path relative to
// root.
func generate(root string) (map[string][]byte, error) {
	m, err := load(root)
	if err != nil {
		return nil, err
	}
	sch, err := schema(m)
	if err != nil {
		return nil, err
	}
	md, err := os.ReadFile(filepath.Join(root, mdFile))
	if err != nil {
		return nil, err
	}
	md, err = markdown(m, md)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{tsFile: typescript(m), schemaFile: sch, mdFile: md}, nil
}

func main() {
	root := flag.String("root", ".", "the module's root")
	flag.Parse()
	files, err := generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
	for _, name := range sortedKeys(files) {
		if err := os.WriteFile(filepath.Join(*root, name), files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "protogen:", err)
			os.Exit(1)
		}
	}
}
