package config

import (
	"fmt"
	"strings"
)

// ReferencePath is where Reference is kept in the repository, from its
// root: docs/configuration.md, written by go run ./cmd/configdoc.
const ReferencePath = "docs/configuration.md"

// Reference returns the configuration reference, in Markdown: how
// settings are read, then every variable of Vars with its default, its
// meaning and whether it is a secret. docs/configuration.md is this text;
// a test fails when the two differ.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from internal/config (Vars) by go run ./cmd/configdoc; do not edit by hand. -->

Every setting of the service, with its default and meaning, for whoever configures a deployment.

Settings come from environment variables, then from a ` + "`.env`" + ` file in the working directory (or the file named by
` + "`ENV_FILE`" + `), then from the defaults; the environment wins. A variable set to blanks counts as unset, except
` + "`KAFKA_BOOTSTRAP_SERVERS`" + ` and ` + "`KAFKA_PUBLISH_TOPIC`" + `, which are then an error: an empty value would otherwise
hide behind the default. ` + "`ingestion-service check`" + ` reports every invalid setting at once, warns about variables
that look like settings but are none and about settings the chosen source does not read (` + "`-strict`" + ` makes warnings
fail, for a CI gate), and probes Kafka (every topic the service writes) and the source; the service itself stops at
start-up with one line naming every invalid variable, and exit status 2, and logs the settings its source ignores.
The start-up log line lists every setting in force, by variable name in lower case.

The original Python service's settings keep their names and defaults: ` + "`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_PUBLISH_TOPIC`,\n`OPENDOTA_STREAM_URL`, `API_HOST`, `API_PORT`, `LOG_LEVEL`, `LOG_FORMAT` and `SERVICE_NAME`" + `. Only the default
source changed: the original's stream does not exist (see [Sources](sources.md)). ` + "`.env.example`" + ` lists every setting
with its default.

Durations take Go's syntax (` + "`500ms`, `10s`, `2m`" + `). Secrets are never logged, and are shown as ` + "`REDACTED`" + ` in the
start-up summary.

| Variable | Default | Meaning | Secret |
|---|---|---|---|
`)
	for _, v := range Vars {
		def := "(none)"
		if v.Default != "" {
			def = "`" + v.Default + "`"
		}
		secret := ""
		if v.Secret {
			secret = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Name, def, strings.ReplaceAll(v.Help, "|", `\|`), secret)
	}
	b.WriteString(`
Memory: unless ` + "`GOMEMLIMIT`" + ` is set, the service gives the Go runtime a soft memory limit sized from its buffers
(12 MiB, plus 16 bytes per ` + "`BUFFER_MAX_RECORDS`, 512 per `KAFKA_MAX_BUFFERED_RECORDS`, 48 per ID of\n`DEDUP_WINDOW`" + `: about 21 MiB with the defaults), logged at start-up as ` + "`memory_limit_bytes`" + `. It keeps the heap close
to the live data (about 10 MiB at full speed with the defaults), so that peak RSS stays near 32 MiB; see
[Performance](performance.md).
`)
	return b.String()
}
