package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"

	"geneve64/nat64"
)

// FuzzConfigFile: any config file, merged with flags and checked as the
// command does, gives settings or an error, never a panic.
func FuzzConfigFile(f *testing.F) {
	for _, ex := range []string{"../../examples/client.toml", "../../examples/server.toml"} {
		if b, err := os.ReadFile(ex); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("vni = -1\nlocal = \"::1\"\nremote = \"::/0\"\n"))
	f.Add([]byte("vni = 16777216\nmtu = 1\naddr = [\"x\"]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var flags Settings
		fs := pflag.NewFlagSet("fuzz", pflag.ContinueOnError)
		registerFlags(fs, &flags)
		s, err := merge(fs, flags, file)
		if err != nil {
			return
		}
		for _, mode := range []nat64.Mode{nat64.Symmetric, nat64.Server, nat64.Client, nat64.Auto} {
			m := s
			if m.positional(mode, nil) != nil {
				continue
			}
			m.nodeConfig(mode)
		}
	})
}
