package nat64

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"geneve64/geneve"
)

var (
	idA = netip.MustParseAddr("2001:db8:a::1")
	idB = netip.MustParseAddr("2001:db8:b::1")
)

// TestOptionGolden: the frame of the original README's symmetric example, as
// endpoint 2001:db8:a::1 sends it to 2001:db8:b::1, byte for byte.
func TestOptionGolden(t *testing.T) {
	opt, err := AppendOption(nil, Endpoints{Src: idA, Dst: idB})
	if err != nil {
		t.Fatal(err)
	}
	h := geneve.Header{Protocol: geneve.ProtocolEthernet, VNI: 42, OptionBytes: opt}
	wire, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "0900655800002a00" + "01620108" +
		"20010db8000a00000000000000000001" + "20010db8000b00000000000000000001"
	if got := hex.EncodeToString(wire); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	d, _, err := geneve.Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	e, err := FindOption(&d)
	if err != nil || e.Src != idA || e.Dst != idB {
		t.Fatalf("FindOption = %+v, %v", e, err)
	}
	if e.Reverse() != (Endpoints{Src: idB, Dst: idA}) {
		t.Fatal("Reverse")
	}
	if err := d.CheckCritical(KnownOptions); err != nil {
		t.Fatal(err)
	}
}

func frameWith(t *testing.T, opts ...geneve.Option) geneve.Header {
	t.Helper()
	var area []byte
	for _, o := range opts {
		var err error
		if area, err = geneve.AppendOption(area, o); err != nil {
			t.Fatal(err)
		}
	}
	wire, err := (&geneve.Header{VNI: 42, OptionBytes: area}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := geneve.Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestFindOptionErrors(t *testing.T) {
	good := append(idA.AsSlice(), idB.AsSlice()...)
	for _, tc := range []struct {
		name string
		h    geneve.Header
		err  error
		msg  string
	}{
		{"none", frameWith(t), ErrNoOption, ""},
		{"other options only", frameWith(t, geneve.Option{Class: 0x0162, Type: 0x02, Data: good}), ErrNoOption, ""},
		{"short", frameWith(t, geneve.Option{Class: OptionClass, Type: OptionType, Data: good[:16]}), ErrOptionLength, "16 bytes"},
		{"long", frameWith(t, geneve.Option{Class: OptionClass, Type: OptionType, Data: append(good, 0, 0, 0, 0)}), ErrOptionLength, "36 bytes"},
		{"twice", frameWith(t,
			geneve.Option{Class: OptionClass, Type: OptionType, Data: good},
			geneve.Option{Class: 0x0103, Type: 1},
			geneve.Option{Class: OptionClass, Type: OptionType, Data: good}), ErrDuplicateOption, "offset 40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FindOption(&tc.h)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.err, tc.msg)
			}
		})
	}
	mapped := append(idA.AsSlice(), netip.MustParseAddr("::ffff:192.0.2.1").AsSlice()...)
	h0 := frameWith(t, geneve.Option{Class: OptionClass, Type: OptionType, Data: mapped})
	if _, err := FindOption(&h0); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), "destination ::ffff:192.0.2.1") {
		t.Fatalf("v4-mapped identity: %v", err)
	}
	// Among other options, and with its critical bit set, it is still found.
	h := frameWith(t, geneve.Option{Class: 0x0103, Type: 7, Data: make([]byte, 8)},
		geneve.Option{Class: OptionClass, Type: OptionType | geneve.CriticalBit, Data: good})
	if e, err := FindOption(&h); err != nil || e.Src != idA {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestAppendOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		e   Endpoints
		msg string
	}{
		{Endpoints{Src: netip.MustParseAddr("192.0.2.1"), Dst: idB}, "source 192.0.2.1"},
		{Endpoints{Src: idA, Dst: netip.MustParseAddr("::ffff:192.0.2.1")}, "destination ::ffff:192.0.2.1"},
		{Endpoints{Src: idA}, "destination invalid IP"},
	} {
		out, err := AppendOption([]byte{1}, tc.e)
		if !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), tc.msg) || !bytes.Equal(out, []byte{1}) {
			t.Errorf("%+v: %v, want naming %q", tc.e, err, tc.msg)
		}
	}
}

func TestOptionAllocs(t *testing.T) {
	h := frameWith(t, geneve.Option{Class: OptionClass, Type: OptionType, Data: append(idA.AsSlice(), idB.AsSlice()...)})
	buf := make([]byte, 0, 64)
	e := Endpoints{Src: idA, Dst: idB}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := FindOption(&h); err != nil {
			panic(err)
		}
		buf, _ = AppendOption(buf[:0], e)
	}); n != 0 {
		t.Fatalf("%v allocs/op", n)
	}
}

// FuzzFindOption: any options area, behind a valid header, never panics the
// option decoder, and a found option round-trips.
func FuzzFindOption(f *testing.F) {
	opt, _ := AppendOption(nil, Endpoints{Src: idA, Dst: idB})
	f.Add(opt)
	f.Add(append(opt, opt...))
	f.Add([]byte{0x01, 0x62, 0x01, 0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Fuzz(func(t *testing.T, area []byte) {
		if len(area) > geneve.MaxOptionsLen {
			return
		}
		area = area[:len(area)&^3]
		wire := append([]byte{byte(len(area) / 4), 0, 0x65, 0x58, 0, 0, 42, 0}, area...)
		h, _, err := geneve.Parse(wire)
		if err != nil {
			return
		}
		e, err := FindOption(&h)
		if err != nil {
			return
		}
		again, err := AppendOption(nil, e)
		if err != nil || len(again) != OptionLen {
			t.Fatalf("%+v does not re-encode: %v", e, err)
		}
	})
}
