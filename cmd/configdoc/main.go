// Command configdoc writes the configuration reference,
// docs/configuration.md, from the settings the code reads
// (internal/config's Vars). Run it from the repository's root after
// changing a setting:
//
//	go run ./cmd/configdoc
//
// With -check it writes nothing and exits 1 if the file is stale.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/dota-data/ingestion-service/internal/config"
)

func main() {
	checkOnly := flag.Bool("check", false, "exit 1 if "+config.ReferencePath+" differs from the code, writing nothing")
	flag.Parse()
	want := config.Reference()
	if *checkOnly {
		got, err := os.ReadFile(config.ReferencePath)
		if err != nil || string(got) != want {
			fmt.Fprintf(os.Stderr, "configdoc: %s is stale; run go run ./cmd/configdoc\n", config.ReferencePath)
			os.Exit(1)
		}
		return
	}
	if err := os.WriteFile(config.ReferencePath, []byte(want), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
