package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"geneve64/nat64"
)

// The host set-up a gateway needs, once, as root: a TUN its user may open,
// policy routing that hands it only the GENEVE flows, conntrack kept off
// those flows, and accepts in the host's own firewall. It is a command
// because the order and the details matter and were each found by
// failure: a NAT64 that rewrites destinations in prerouting (a prefix
// dnat in front of TAYGA, Jool in netfilter mode) sends new GENEVE flows
// past the policy rule unless they are untracked, and an accept in a table
// of our own does not override another table's drop.

// gatewaySetup is what one gateway host needs.
type gatewaySetup struct {
	lan, tun, user string
	ipv4           netip.Addr
	prefix         netip.Prefix
	port           uint16
	table          int
	txqueuelen     int
	rmemMax        int
}

// setupStep is one command: argv, with stdin when it reads a script.
// ignoreFail marks the removals that may find nothing to remove.
type setupStep struct {
	argv       []string
	stdin      string
	ignoreFail bool
	comment    string
}

// nftTable is the nftables table the gateway's own rules live in.
const nftTable = "geneve64"

// nftComment marks the rules inserted into the host's own chains, so that
// a later --apply or --undo finds them.
const nftComment = "geneve64 gateway"

func gatewaySetupCommand(stdout, stderr io.Writer) *cobra.Command {
	var s gatewaySetup
	var ipv4, prefix string
	var apply, undo bool
	cmd := &cobra.Command{
		Use:   "setup --lan IFACE --ipv4 ADDR [--prefix P] [--user U] [--apply | --undo]",
		Short: "Print (or, as root, apply or undo) the host set-up a gateway needs",
		Long: `Prints the ip and nft commands that prepare this host for "geneve64 gateway": a TUN owned
by the gateway's user, a policy rule and route that hand the TUN only GENEVE leaving the
site (IFACE) towards the NAT64 prefix, a raw-priority notrack for the gateway's flows (so
that no NAT, and no prefix rewrite in front of the NAT64, touches them), larger socket
buffers, and accepts for the gateway's traffic at the top of every input and forward chain
the host's firewall already has. --apply runs them (idempotent: again replaces what an
earlier run added); --undo removes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if s.ipv4, s.prefix, err = gatewayAddrs(ipv4, prefix); err != nil {
				return err
			}
			if s.lan == "" {
				return usagef("--lan is required: the interface facing the IPv6 site")
			}
			if apply && undo {
				return usagef("--apply and --undo: choose one")
			}
			if s.table < 1 || s.table > 252 {
				return usagef("--table %d: want a routing table from 1 to 252", s.table)
			}
			if !apply && !undo {
				printSetup(stdout, s)
				return nil
			}
			if os.Geteuid() != 0 {
				return errors.New("gateway setup: --apply and --undo change routing and the firewall: run as root")
			}
			// --apply first takes back what an earlier run added, so a
			// second run changes nothing; the TUN stays, as a running
			// gateway holds it.
			chains := hostChains()
			steps := s.undoSteps(chains)
			if apply {
				steps = append(steps, s.applySteps(chains)...)
			} else {
				steps = append(steps, setupStep{argv: []string{"ip", "link", "del", s.tun}, ignoreFail: true})
			}
			return runSteps(stdout, steps)
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.lan, "lan", "", "the interface facing the IPv6 site (required)")
	f.StringVar(&ipv4, "ipv4", "", "the gateway's public IPv4 address (required)")
	f.StringVar(&prefix, "prefix", nat64.WellKnownPrefix.String(), "the NAT64 prefix the site sends to")
	f.Uint16Var(&s.port, "port", 6081, "GENEVE port")
	f.StringVar(&s.tun, "tun", "geneve64gw", "the TUN device to create")
	f.StringVar(&s.user, "user", "nobody", "the user (name or uid) the gateway runs as, who owns the TUN")
	f.IntVar(&s.table, "table", 200, "the routing table for the GENEVE flows")
	f.IntVar(&s.txqueuelen, "txqueuelen", 5000, "the TUN's queue towards the gateway, in packets (the kernel's default, 500, drops bursts)")
	f.IntVar(&s.rmemMax, "rmem-max", 8<<20, "raise net.core.rmem_max and wmem_max to this (bytes), so the gateway's socket buffers can grow without privilege; 0 leaves them")
	f.BoolVar(&apply, "apply", false, "run the commands (as root); again replaces what an earlier run added")
	f.BoolVar(&undo, "undo", false, "remove what --apply added (as root)")
	f.SortFlags = false
	return cmd
}

// nftScript is the gateway's own table: conntrack off for its flows, at
// raw priority, before any NAT or prefix rewrite sees them.
func (s gatewaySetup) nftScript() string {
	port := strconv.Itoa(int(s.port))
	return fmt.Sprintf(`table inet %[1]s {
	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname %[2]q ip6 daddr %[3]s udp sport %[4]s notrack
		iifname %[5]q notrack
		ip daddr %[6]s udp dport %[4]s notrack
	}
	chain raw_output {
		type filter hook output priority raw; policy accept;
		ip saddr %[6]s udp sport %[4]s notrack
	}
}
`, nftTable, s.lan, s.prefix, port, s.tun, s.ipv4)
}

// hostChain is a base chain of the host's own firewall.
type hostChain struct {
	Family, Table, Name, Hook string
}

// hostChains lists the host's input and forward filter chains (not ours),
// or none when nft cannot say.
func hostChains() []hostChain {
	out, err := exec.Command("nft", "-j", "list", "chains").Output()
	if err != nil {
		return nil
	}
	var doc struct {
		Nftables []struct {
			Chain *struct {
				Family, Table, Name, Hook, Type string
			} `json:"chain"`
		} `json:"nftables"`
	}
	if json.Unmarshal(out, &doc) != nil {
		return nil
	}
	var cs []hostChain
	for _, e := range doc.Nftables {
		c := e.Chain
		if c == nil || c.Table == nftTable || c.Type != "filter" {
			continue
		}
		if (c.Hook == "input" && (c.Family == "ip" || c.Family == "inet")) ||
			(c.Hook == "forward" && (c.Family == "ip6" || c.Family == "inet")) {
			cs = append(cs, hostChain{c.Family, c.Table, c.Name, c.Hook})
		}
	}
	return cs
}

// accepts are the rules inserted at the top of a host chain: the
// gateway's traffic is untracked, so "ct state established" accepts
// further down never match it.
func (s gatewaySetup) accepts(c hostChain) [][]string {
	comment := []string{"comment", strconv.Quote(nftComment)}
	rule := func(expr ...string) []string {
		return append(append([]string{"nft", "insert", "rule", c.Family, c.Table, c.Name}, expr...), comment...)
	}
	if c.Hook == "input" {
		return [][]string{rule("ip", "daddr", s.ipv4.String(), "udp", "dport", strconv.Itoa(int(s.port)), "accept")}
	}
	return [][]string{
		rule("iifname", strconv.Quote(s.lan), "oifname", strconv.Quote(s.tun), "accept"),
		rule("iifname", strconv.Quote(s.tun), "oifname", strconv.Quote(s.lan), "accept"),
	}
}

func (s gatewaySetup) applySteps(chains []hostChain) []setupStep {
	var steps []setupStep
	if _, err := os.Stat("/sys/class/net/" + s.tun); err != nil {
		steps = append(steps, setupStep{argv: []string{"ip", "tuntap", "add", "dev", s.tun, "mode", "tun", "user", s.user},
			comment: "a persistent TUN the gateway's user may open"})
	}
	steps = append(steps,
		setupStep{argv: []string{"ip", "link", "set", s.tun, "up", "txqueuelen", strconv.Itoa(s.txqueuelen)}},
		setupStep{argv: []string{"ip", "-6", "rule", "add", "iif", s.lan, "ipproto", "udp", "sport", strconv.Itoa(int(s.port)), "lookup", strconv.Itoa(s.table)},
			comment: "GENEVE leaving the site, and nothing else, goes to the gateway"},
		setupStep{argv: []string{"ip", "-6", "route", "replace", s.prefix.String(), "dev", s.tun, "table", strconv.Itoa(s.table)}},
		setupStep{argv: []string{"nft", "-f", "-"}, stdin: s.nftScript(),
			comment: "no conntrack, so no NAT or prefix rewrite, for the gateway's flows"},
	)
	if s.rmemMax > 0 {
		steps = append(steps, setupStep{argv: []string{"sysctl", "-qw", fmt.Sprintf("net.core.rmem_max=%d", s.rmemMax), fmt.Sprintf("net.core.wmem_max=%d", s.rmemMax)},
			comment: "room for the gateway's socket buffers without privilege"})
	}
	for _, c := range chains {
		for _, argv := range s.accepts(c) {
			steps = append(steps, setupStep{argv: argv, comment: fmt.Sprintf("the host's own %s chain: accept before any drop", c.Hook)})
		}
	}
	return steps
}

// undoSteps removes what applySteps adds; each may find nothing. The
// sysctls stay: a larger maximum harms nothing.
func (s gatewaySetup) undoSteps(chains []hostChain) []setupStep {
	steps := []setupStep{
		{argv: []string{"nft", "delete", "table", "inet", nftTable}, ignoreFail: true},
		{argv: []string{"ip", "-6", "route", "del", s.prefix.String(), "dev", s.tun, "table", strconv.Itoa(s.table)}, ignoreFail: true},
	}
	// A rule added twice by hand is removed twice.
	for range 8 {
		steps = append(steps, setupStep{argv: []string{"ip", "-6", "rule", "del", "iif", s.lan, "ipproto", "udp", "sport", strconv.Itoa(int(s.port)), "lookup", strconv.Itoa(s.table)}, ignoreFail: true})
	}
	for _, r := range markedRules(chains) {
		steps = append(steps, setupStep{argv: []string{"nft", "delete", "rule", r.Family, r.Table, r.Chain, "handle", strconv.Itoa(r.Handle)}, ignoreFail: true})
	}
	return steps
}

// markedRule is a rule an earlier --apply inserted into a host chain.
type markedRule struct {
	Family, Table, Chain string
	Handle               int
}

func markedRules(chains []hostChain) []markedRule {
	var rs []markedRule
	for _, c := range chains {
		out, err := exec.Command("nft", "-j", "list", "chain", c.Family, c.Table, c.Name).Output()
		if err != nil {
			continue
		}
		var doc struct {
			Nftables []struct {
				Rule *struct {
					Family, Table, Chain, Comment string
					Handle                        int
				} `json:"rule"`
			} `json:"nftables"`
		}
		if json.Unmarshal(out, &doc) != nil {
			continue
		}
		for _, e := range doc.Nftables {
			if r := e.Rule; r != nil && r.Comment == nftComment {
				rs = append(rs, markedRule{r.Family, r.Table, r.Chain, r.Handle})
			}
		}
	}
	return rs
}

// runSteps runs each step, saying what it runs, and stops at the first
// failure that is not an expected "nothing to remove".
func runSteps(w io.Writer, steps []setupStep) error {
	for _, st := range steps {
		cmd := exec.Command(st.argv[0], st.argv[1:]...)
		if st.stdin != "" {
			cmd.Stdin = strings.NewReader(st.stdin)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err != nil && st.ignoreFail {
			continue
		}
		fmt.Fprintf(w, "+ %s\n", shellLine(st.argv))
		if err != nil {
			return fmt.Errorf("gateway setup: %s: %w: %s", shellLine(st.argv), err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// printSetup writes the commands --apply would run on this host, as a
// shell script for a reader to check or adapt.
func printSetup(w io.Writer, s gatewaySetup) {
	chains := hostChains()
	fmt.Fprintf(w, "# geneve64 gateway: host set-up, as root (geneve64 gateway setup ... --apply runs it)\n")
	for _, st := range s.applySteps(chains) {
		if st.comment != "" {
			fmt.Fprintf(w, "# %s\n", st.comment)
		}
		if st.stdin != "" {
			fmt.Fprintf(w, "%s <<'EOF'\n%sEOF\n", shellLine(st.argv), st.stdin)
			continue
		}
		fmt.Fprintln(w, shellLine(st.argv))
	}
	if chains == nil {
		fmt.Fprintf(w, "# where the firewall drops by default, accept at the top of its input chain:\n"+
			"#   ip daddr %s udp dport %d accept\n# and of its forward chain:\n"+
			"#   iifname %q oifname %q accept; iifname %q oifname %q accept\n",
			s.ipv4, s.port, s.lan, s.tun, s.tun, s.lan)
	}
}

// shellLine quotes argv for a POSIX shell.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
