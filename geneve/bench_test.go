package geneve

import "testing"

func benchFrame() ([]byte, Header) {
	opts, _ := AppendOption(nil, Option{Class: 0x0162, Type: 0x01, Data: make([]byte, 32)})
	h := Header{Protocol: ProtocolEthernet, VNI: 42, OptionBytes: opts}
	wire, _ := h.Append(nil)
	return append(wire, make([]byte, 1400)...), h
}

var known = KnownOptions{{Class: 0x0162, Type: 0x01}}

func decodeOne(wire []byte) int {
	h, payload, err := Parse(wire)
	if err != nil || h.CheckCritical(known) != nil {
		panic(err)
	}
	n := len(payload)
	for it := h.Options(); it.Next(); {
		n += len(it.Option().Data)
	}
	return n
}

// TestSteadyStateAllocs: decoding and encoding a well-formed frame allocate
// nothing once the destination buffer has room.
func TestSteadyStateAllocs(t *testing.T) {
	wire, h := benchFrame()
	if n := testing.AllocsPerRun(1000, func() { decodeOne(wire) }); n != 0 {
		t.Errorf("decode: %v allocs/op", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() { buf, _ = h.Append(buf[:0]) }); n != 0 {
		t.Errorf("encode: %v allocs/op", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		buf, _ = AppendOption(buf[:0], Option{Class: 0x0162, Type: 1, Data: wire[12:44]})
	}); n != 0 {
		t.Errorf("append option: %v allocs/op", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	wire, _ := benchFrame()
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		decodeOne(wire)
	}
}

func BenchmarkEncode(b *testing.B) {
	_, h := benchFrame()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = h.Append(buf[:0])
	}
}
