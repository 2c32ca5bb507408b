package geneve

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func seedFrames(f *testing.F) {
	for _, s := range []string{
		"0900655800002a000162010800000000000000000000000000000000000000000000000000000000000000000000",
		"000086dd00000000",
		"0480655800000700016201000103 7f020000000000000000",
		"0240655800000100fff0810101020304",
		"3f00655800002a00",
		"0100655800002a0001620108",
		"c000655800002a00",
		"",
	} {
		b, _ := hex.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)))
		f.Add(b)
	}
}

// FuzzParse: Parse never panics, and whatever it accepts re-encodes to the
// same bytes (less the reserved bits, which are not kept) and parses again
// to the same header.
func FuzzParse(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := Parse(b)
		if err != nil {
			return
		}
		if h.Len()+len(payload) != len(b) {
			t.Fatalf("header %d + payload %d != %d", h.Len(), len(payload), len(b))
		}
		_ = h.CheckCritical(KnownOptions{{Class: 0x0162, Type: 1}})
		wire, err := h.Append(nil)
		if err != nil {
			t.Fatalf("accepted header does not re-encode: %v", err)
		}
		h2, _, err := Parse(wire)
		if err != nil {
			t.Fatalf("re-encoded header does not parse: %v", err)
		}
		if h2.OAM != h.OAM || h2.Protocol != h.Protocol || h2.VNI != h.VNI || !bytes.Equal(h2.OptionBytes, h.OptionBytes) {
			t.Fatalf("round trip changed %+v into %+v", h, h2)
		}
		if h.Critical && !h2.Critical {
			t.Fatal("C bit lost")
		}
	})
}

// FuzzOptionIter: the iterator over any bytes never panics, never reads past
// the area, and stops with an error or at the exact end.
func FuzzOptionIter(f *testing.F) {
	f.Add([]byte{0x01, 0x62, 0x01, 0x08})
	f.Add([]byte{0x01, 0x62, 0x01, 0x00, 0xff, 0xff, 0x81, 0x01, 1, 2, 3, 4})
	f.Add([]byte{0x01, 0x62})
	f.Fuzz(func(t *testing.T, area []byte) {
		it := IterOptions(area)
		sum := 0
		for it.Next() {
			o := it.Option()
			sum += o.Len()
			if len(o.Data)%4 != 0 || len(o.Data) > MaxOptionDataLen {
				t.Fatalf("option data %d bytes", len(o.Data))
			}
		}
		if it.Err() == nil && sum != len(area) {
			t.Fatalf("clean end after %d of %d bytes", sum, len(area))
		}
		if sum > len(area) {
			t.Fatalf("walked %d bytes of %d", sum, len(area))
		}
	})
}
