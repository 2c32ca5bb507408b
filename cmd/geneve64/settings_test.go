package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"geneve64/nat64"
)

// settingsFrom parses a server's command line as the command does, up to
// the node's configuration.
func settingsFrom(t *testing.T, toml string, args ...string) (Settings, error) {
	t.Helper()
	var flags Settings
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	registerFlags(fs, &flags)
	if err := fs.Parse(args); err != nil {
		return Settings{}, err
	}
	file := ""
	if toml != "" {
		file = filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(file, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := merge(fs, flags, file)
	if err != nil {
		return s, err
	}
	if err := s.positional(nat64.Server, []string{"42", "2001:db8::1", "fdd9::/64"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.nodeConfig(nat64.Server)
	return s, err
}

// TestDurations: a duration out of range is refused naming the setting and
// the value, never replaced by the default; 0 turns keepalives off.
func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		toml string
		args []string
		want string // "" : accepted
	}{
		{"", []string{"--peer-timeout", "-1s"}, "--peer-timeout -1s"},
		{"", []string{"--peer-timeout", "0"}, "--peer-timeout 0s"},
		{"peer-timeout = \"-5s\"\n", nil, "--peer-timeout -5s"},
		{"", []string{"--keepalive", "1ns"}, "--keepalive 1ns"},
		{"", []string{"--keepalive", "-3s"}, "--keepalive -3s"},
		{"keepalive = \"999ms\"\n", nil, "--keepalive 999ms"},
		{"", []string{"--udp-idle", "0"}, "--udp-idle 0s"},
		{"", []string{"--keepalive", "0"}, ""},
		{"", []string{"--keepalive", "1s", "--peer-timeout", "1s"}, ""},
	} {
		_, err := settingsFrom(t, tc.toml, tc.args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q %q: %v, want accepted", tc.toml, tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q %q: %v, want an error naming %q", tc.toml, tc.args, err, tc.want)
		case tc.want != "" && !errors.As(err, new(usageError)):
			t.Errorf("%q %q: %v is not a usage error (exit 2)", tc.toml, tc.args, err)
		}
	}
	var flags Settings
	registerFlags(pflag.NewFlagSet("x", pflag.ContinueOnError), &flags)
	flags.Keepalive = 0
	flags.positional(nat64.Server, []string{"42", "2001:db8::1", "fdd9::/64"})
	cfg, err := flags.nodeConfig(nat64.Server)
	if err != nil || cfg.Endpoint.Keepalive >= 0 {
		t.Fatalf("--keepalive 0: %v, endpoint keepalive %v, want off (negative)", err, cfg.Endpoint.Keepalive)
	}
}

// TestKeyFileMode: a key file that group or others may read is refused
// with its name, its mode and the fix, as ssh refuses such a private key.
func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if err := os.WriteFile(key, []byte("00112233445566778899aabbccddeeff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readKeyFile(key); err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
	if runtime.GOOS == "windows" {
		t.Skip("Windows keeps access in ACLs; the mode is not checked there")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, err := readKeyFile(key)
		if !errors.Is(err, errKeyFileMode) {
			t.Fatalf("mode %04o: %v, want errKeyFileMode", mode, err)
		}
		for _, want := range []string{key, fmt.Sprintf("mode %04o", mode), "chmod 600 " + key} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: %q lacks %q", mode, err, want)
			}
		}
	}
	os.Chmod(key, 0o600)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("a", 5000)), 0o600)
	if _, err := readKeyFile(big); !errors.Is(err, nat64.ErrKey) {
		t.Fatalf("a 5,000-byte file: %v, want ErrKey", err)
	}
}

// TestPositionalForms: the original's argument forms, and mistakes named.
func TestPositionalForms(t *testing.T) {
	if ap, err := parseAddrPort("LOCAL", "[2001:db8:a::1]:7000"); err != nil || ap.String() != "[2001:db8:a::1]:7000" {
		t.Errorf("LOCAL with port: %v %v", ap, err)
	}
	if ap, err := parseAddrPort("LOCAL", "2001:db8:a::1"); err != nil || ap.Port() != 0 {
		t.Errorf("bare LOCAL: %v %v", ap, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"64:ff9b::203.0.113.90", "[64:ff9b::cb00:715a]:6081"},
		{"192.0.2.1:7000", "192.0.2.1:7000"},
		{"geneve-entry-point.nat64.dk", "geneve-entry-point.nat64.dk:6081"},
	} {
		if tg, err := parseTarget(tc.in, 6081); err != nil || tg.String() != tc.want {
			t.Errorf("PATH %q: %v %v, want %s", tc.in, tg, err, tc.want)
		}
	}
	if p, err := parseRemote("fdd9:f2f4:ed01::/64"); err != nil || p.Bits() != 64 {
		t.Errorf("REMOTE prefix: %v %v", p, err)
	}
	for _, bad := range []struct{ f func() error }{
		{func() error { _, err := parseTarget("bad host!", 6081); return err }},
		{func() error { _, err := parseTarget("host:0", 6081); return err }},
		{func() error { _, err := parseRemote("fdd9::1/64"); return err }},
		{func() error { _, err := parseAddrPort("LOCAL", "fe80::1%eth0"); return err }},
	} {
		if bad.f() == nil {
			t.Errorf("a bad form accepted")
		}
	}
}
