package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/dota-data/ingestion-service/internal/config"
)

// TestEveryCommandHasHelp: help, -h and --help, alone and after every
// command, print to stdout and exit 0; serve refuses what it does not
// take instead of starting; the version has three spellings.
func TestEveryCommandHasHelp(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, tt := range []struct {
		args []string
		code int
		out  string // in stdout
	}{
		{[]string{"help"}, 0, "commands:"},
		{[]string{"-h"}, 0, "commands:"},
		{[]string{"--help"}, 0, "commands:"},
		{[]string{"serve", "-h"}, 0, "usage: ingestion-service [serve]"},
		{[]string{"serve", "--help"}, 0, "usage: ingestion-service [serve]"},
		{[]string{"dev", "-h"}, 0, "-kafka-port"},
		{[]string{"dev", "--help"}, 0, "-source"},
		{[]string{"healthcheck", "-h"}, 0, "-timeout"},
		{[]string{"version"}, 0, "dev"},
		{[]string{"-v"}, 0, "dev"},
		{[]string{"--version"}, 0, "dev"},
		{[]string{"serve", "extra"}, 2, ""},
		{[]string{"serve", "--kafka", "x"}, 2, ""},
		{[]string{"dev", "-nonsense"}, 2, ""},
		{[]string{"frobnicate"}, 2, ""},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, noEnv, &stdout, &stderr)
		if code := exitCode(err, io.Discard); code != tt.code || !strings.Contains(stdout.String(), tt.out) {
			t.Errorf("%q: exit %d (%v), stdout %q; want exit %d and %q in stdout", tt.args, code, err, stdout.String(), tt.code, tt.out)
		}
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	for _, tt := range []struct {
		main     string
		settings map[string]string
		want     string
	}{
		{"v1.2.3", nil, "v1.2.3"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef0123", "vcs.modified": "true"}, "dev (revision 0123456789ab, modified)"},
		{"(devel)", map[string]string{"vcs.revision": "0123456789abcdef0123", "vcs.modified": "false"}, "dev (revision 0123456789ab)"},
		{"v0.0.0-20261201152900-0123456789ab", map[string]string{"vcs.revision": "0123456789abcdef0123"}, "v0.0.0-20261201152900-0123456789ab"},
		{"", nil, "dev"},
	} {
		info := &debug.BuildInfo{Main: debug.Module{Version: tt.main}}
		for k, v := range tt.settings {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: k, Value: v})
		}
		if got := versionFrom(info); got != tt.want {
			t.Errorf("version %q with %v: %q, want %q", tt.main, tt.settings, got, tt.want)
		}
	}
}

// TestTuneRuntime: the service runs on one processor with a memory limit
// sized from its settings, unless GOMAXPROCS or GOMEMLIMIT say otherwise.
func TestTuneRuntime(t *testing.T) {
	procs, limit := runtime.GOMAXPROCS(0), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetMemoryLimit(limit) })
	cfg, err := config.LoadLookup(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		env       map[string]string
		wantProcs int
		wantLimit int64
	}{
		{"defaults", nil, 1, cfg.MemoryLimit()},
		{"GOMAXPROCS set", map[string]string{"GOMAXPROCS": "3"}, 3, cfg.MemoryLimit()},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, 1, 1 << 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// As the runtime does at start from the variables.
			runtime.GOMAXPROCS(3)
			debug.SetMemoryLimit(1 << 40)
			tuneRuntime(cfg, func(k string) string { return tt.env[k] })
			if got := runtime.GOMAXPROCS(0); got != tt.wantProcs {
				t.Errorf("GOMAXPROCS %d, want %d", got, tt.wantProcs)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tt.wantLimit)
			}
		})
	}
}
