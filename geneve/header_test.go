package geneve

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seq returns n bytes counting up from start, so misplaced bytes show.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// TestGoldenNAT64Frame is the frame the issue fixes byte for byte: VNI 42,
// Ethernet payload, one option of class 0x0162 type 0x01 with 32 bytes.
func TestGoldenNAT64Frame(t *testing.T) {
	optData := seq(0x10, 32)
	eth := seq(0xa0, 60)
	want := append(mustHex(t, "0900655800002a00 01620108"), optData...)
	want = append(want, eth...)

	opts, err := AppendOption(nil, Option{Class: 0x0162, Type: 0x01, Data: optData})
	if err != nil {
		t.Fatal(err)
	}
	h := Header{Protocol: ProtocolEthernet, VNI: 42, OptionBytes: opts}
	got, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, eth...)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", got, want)
	}

	d, payload, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 0 || d.OAM || d.Critical || d.Protocol != ProtocolEthernet || d.VNI != 42 {
		t.Fatalf("decoded header %+v", d)
	}
	if !bytes.Equal(payload, eth) {
		t.Fatalf("payload %x, want %x", payload, eth)
	}
	it := d.Options()
	if !it.Next() {
		t.Fatalf("no option: %v", it.Err())
	}
	o := it.Option()
	if o.Class != 0x0162 || o.Type != 0x01 || o.Critical() || !bytes.Equal(o.Data, optData) {
		t.Fatalf("option %+v", o)
	}
	if it.Next() || it.Err() != nil {
		t.Fatalf("second option or error: %v", it.Err())
	}
}

func TestGoldenVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    Header
		opts []Option
		wire string
	}{
		{"bare", Header{Protocol: ProtocolIPv6, VNI: 0}, nil, "000086dd00000000"},
		{"max vni ipv4", Header{Protocol: ProtocolIPv4, VNI: MaxVNI}, nil, "00000800ffffff00"},
		{"oam", Header{OAM: true, Protocol: ProtocolEthernet, VNI: 0x123456}, nil, "0080655812345600"},
		{"critical flag set by hand", Header{Critical: true, Protocol: ProtocolEthernet, VNI: 1}, nil, "0040655800000100"},
		{"critical option sets C", Header{Protocol: ProtocolEthernet, VNI: 1},
			[]Option{{Class: 0xfff0, Type: 0x81, Data: []byte{1, 2, 3, 4}}},
			"0240655800000100 fff0810101020304"},
		{"two options, empty data", Header{OAM: true, Protocol: ProtocolEthernet, VNI: 7},
			[]Option{{Class: 0x0162, Type: 0x01}, {Class: 0x0103, Type: 0x7f, Data: make([]byte, 8)}},
			"0480655800000700 01620100 0103 7f02 0000000000000000"},
		{"version 3 encodes", Header{Version: 3, Protocol: 0xabcd, VNI: 5}, nil, "c000abcd00000500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			for _, o := range tc.opts {
				var err error
				if h.OptionBytes, err = AppendOption(h.OptionBytes, o); err != nil {
					t.Fatal(err)
				}
			}
			got, err := h.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			want := mustHex(t, tc.wire)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded %x, want %x", got, want)
			}
			if h.Version != 0 {
				return // not decodable: see TestParseErrors
			}
			d, payload, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(payload) != 0 || d.OAM != h.OAM || d.Protocol != h.Protocol || d.VNI != h.VNI ||
				!bytes.Equal(d.OptionBytes, h.OptionBytes) {
				t.Fatalf("decoded %+v from %+v", d, h)
			}
			critical := h.Critical
			it := d.Options()
			for i := 0; it.Next(); i++ {
				o := it.Option()
				if o.Class != tc.opts[i].Class || o.Type != tc.opts[i].Type || len(o.Data) != len(tc.opts[i].Data) {
					t.Fatalf("option %d: %+v, want %+v", i, o, tc.opts[i])
				}
				critical = critical || o.Critical()
			}
			if d.Critical != critical {
				t.Fatalf("C bit %v, want %v", d.Critical, critical)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wire    string
		err     error
		message string // must appear in the error text: the field and its value
	}{
		{"empty", "", ErrTruncated, "length 0"},
		{"truncated header", "0000655800", ErrTruncated, "length 5"},
		{"version 1", "4000655800002a00", ErrVersion, "version 1"},
		{"version 3", "c000655800002a00", ErrVersion, "version 3"},
		{"options past packet", "0900655800002a00 01620108", ErrOptionsPastPacket, "option length 9 (36 bytes) in a packet of 12 bytes"},
		{"option past area", "0100655800002a00 01620108", ErrOptionPastArea, "offset 0 (class 0x0162 type 0x01) length 8 (32 bytes), 0 bytes left"},
		{"second option past area", "0300655800002a00 01620100 01620102 00000000", ErrOptionPastArea, "offset 4"},
		{"max length field past packet", "3f00655800002a00", ErrOptionsPastPacket, "option length 63 (252 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(mustHex(t, tc.wire))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q does not name %q", err, tc.message)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       Header
		err     error
		message string
	}{
		{"vni", Header{VNI: MaxVNI + 1}, ErrVNI, "VNI 16777216"},
		{"version", Header{Version: 4}, ErrVersion, "version 4"},
		{"options too long", Header{OptionBytes: make([]byte, 256)}, ErrOptionsLength, "options 256 bytes"},
		{"options unaligned", Header{OptionBytes: make([]byte, 6)}, ErrOptionsLength, "options 6 bytes"},
		{"option overruns", Header{OptionBytes: mustHex(t, "01620102 00000000")}, ErrOptionPastArea, "length 2 (8 bytes), 4 bytes left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.h.Append([]byte{0xee})
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.err, tc.message)
			}
			if !bytes.Equal(out, []byte{0xee}) {
				t.Fatalf("dst changed on error: %x", out)
			}
		})
	}
	for _, n := range []int{3, 128} {
		_, err := AppendOption(nil, Option{Class: 1, Type: 2, Data: make([]byte, n)})
		if !errors.Is(err, ErrOptionDataLength) || !strings.Contains(err.Error(), "data "+strconv.Itoa(n)+" bytes") {
			t.Fatalf("data %d: err = %v", n, err)
		}
	}
}

// TestLimits: the largest options area and the largest single option encode
// and decode; one word more is refused.
func TestLimits(t *testing.T) {
	var opts []byte
	var err error
	opts, err = AppendOption(opts, Option{Class: 1, Type: 1, Data: make([]byte, MaxOptionDataLen)})
	if err != nil {
		t.Fatal(err)
	}
	opts, err = AppendOption(opts, Option{Class: 2, Type: 2, Data: make([]byte, MaxOptionsLen-2*OptionHeaderLen-MaxOptionDataLen)})
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != MaxOptionsLen {
		t.Fatalf("options %d bytes, want %d", len(opts), MaxOptionsLen)
	}
	h := Header{VNI: 9, OptionBytes: opts}
	wire, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if wire[0] != 63 {
		t.Fatalf("first byte %#x, want 63 words", wire[0])
	}
	d, _, err := Parse(wire)
	if err != nil || len(d.OptionBytes) != MaxOptionsLen {
		t.Fatalf("parse: %v, %d bytes", err, len(d.OptionBytes))
	}
	h.OptionBytes = append(opts, 0, 0, 0, 0)
	if _, err := h.Append(nil); !errors.Is(err, ErrOptionsLength) {
		t.Fatalf("253+ bytes: %v", err)
	}
}

// TestReservedBitsIgnored: RFC 8926 says receivers ignore reserved bits, both
// the header's and an option's.
func TestReservedBitsIgnored(t *testing.T) {
	wire := mustHex(t, "013f6558000042ff 0162 01e0")
	h, _, err := Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	if h.OAM || h.Critical || h.VNI != 0x42 {
		t.Fatalf("%+v", h)
	}
	it := h.Options()
	if !it.Next() || len(it.Option().Data) != 0 {
		t.Fatalf("option: %+v %v", it.Option(), it.Err())
	}
}

func TestCheckCritical(t *testing.T) {
	known := KnownOptions{{Class: 0x0162, Type: 0x01}, {Class: 0xfff1, Type: 0x02}}
	build := func(opts ...Option) Header {
		var area []byte
		for _, o := range opts {
			area, _ = AppendOption(area, o)
		}
		wire, err := (&Header{OptionBytes: area}).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := Parse(wire)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    Header
		bad  bool
	}{
		{"none", build(), false},
		{"known plain", build(Option{Class: 0x0162, Type: 0x01}), false},
		{"unknown plain is fine", build(Option{Class: 0x0999, Type: 0x05}), false},
		{"known critical", build(Option{Class: 0xfff1, Type: 0x82}), false},
		{"unknown critical", build(Option{Class: 0x0162, Type: 0x01}, Option{Class: 0x0999, Type: 0x85}), true},
		{"known type, other class, critical", build(Option{Class: 0x0163, Type: 0x81}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.CheckCritical(known)
			if tc.bad != (err != nil) {
				t.Fatalf("err = %v, want bad=%v", err, tc.bad)
			}
			if tc.bad && (!errors.Is(err, ErrUnknownCritical) || !strings.Contains(err.Error(), "class 0x")) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// An entry written with the critical bit knows the option too.
	withBit := KnownOptions{{Class: 0xfff0, Type: 0x81}}
	hb := build(Option{Class: 0xfff0, Type: 0x81})
	if err := hb.CheckCritical(withBit); err != nil {
		t.Fatalf("entry with the critical bit: %v", err)
	}
	// A critical option hidden behind a cleared C bit is still caught.
	wire := mustHex(t, "0100655800000100 09998500")
	h, _, err := Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	if h.Critical {
		t.Fatal("C bit should read clear")
	}
	if err := h.CheckCritical(known); !errors.Is(err, ErrUnknownCritical) {
		t.Fatalf("hidden critical option passed: %v", err)
	}
}
