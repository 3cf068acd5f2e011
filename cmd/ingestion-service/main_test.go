package main

import (
	"bytes"
	"context"
	"io"
	"runtime/debug"
	"strings"
	"testing"
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
