package geneve

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// randomHeader makes a header with random fields and random options whose
// total stays within 244 bytes: gopacket keeps the options offset in a uint8,
// which wraps for larger areas.
func randomHeader(r *rand.Rand) (Header, []Option) {
	h := Header{
		OAM:      r.IntN(2) == 0,
		Protocol: uint16(r.Uint32()),
		VNI:      r.Uint32N(MaxVNI + 1),
	}
	var opts []Option
	budget := 244
	for n := r.IntN(6); n > 0; n-- {
		maxData := min(MaxOptionDataLen, budget-OptionHeaderLen)
		if maxData < 0 {
			break
		}
		data := make([]byte, r.IntN(maxData/4+1)*4)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		o := Option{Class: uint16(r.Uint32()), Type: uint8(r.Uint32()), Data: data}
		opts = append(opts, o)
		h.OptionBytes, _ = AppendOption(h.OptionBytes, o)
		budget -= o.Len()
	}
	return h, opts
}

// TestDifferentialGopacket checks our codec against gopacket's, an
// independent implementation: it must decode what we encode, and we must
// decode what it encodes, field for field.
func TestDifferentialGopacket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	payload := []byte("inner frame bytes")
	for i := 0; i < 5000; i++ {
		h, opts := randomHeader(r)
		anyCritical := false
		for _, o := range opts {
			anyCritical = anyCritical || o.Critical()
		}

		// Ours → gopacket.
		wire, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, payload...)
		var g layers.Geneve
		if err := g.DecodeFromBytes(wire, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("gopacket rejects %x: %v", wire, err)
		}
		if g.Version != 0 || g.OAMPacket != h.OAM || g.CriticalOption != anyCritical ||
			uint16(g.Protocol) != h.Protocol || g.VNI != h.VNI ||
			int(g.OptionsLength) != len(h.OptionBytes) || len(g.Options) != len(opts) ||
			!bytes.Equal(g.Payload, payload) {
			t.Fatalf("gopacket decoded %+v from %+v", g, h)
		}
		for j, o := range opts {
			gopt := g.Options[j]
			if gopt.Class != o.Class || gopt.Type != o.Type || int(gopt.Length) != o.Len() || !bytes.Equal(gopt.Data, o.Data) {
				t.Fatalf("option %d: gopacket %+v, ours %+v", j, gopt, o)
			}
		}

		// gopacket → ours.
		g2 := &layers.Geneve{
			OAMPacket:      h.OAM,
			CriticalOption: anyCritical,
			Protocol:       layers.EthernetType(h.Protocol),
			VNI:            h.VNI,
		}
		for _, o := range opts {
			g2.Options = append(g2.Options, &layers.GeneveOption{
				Class: o.Class, Type: o.Type, Length: uint8(o.Len()), Data: o.Data,
			})
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, g2, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		d, p, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("we reject gopacket's %x: %v", buf.Bytes(), err)
		}
		if d.OAM != h.OAM || d.Critical != anyCritical || d.Protocol != h.Protocol || d.VNI != h.VNI ||
			!bytes.Equal(d.OptionBytes, h.OptionBytes) || !bytes.Equal(p, payload) {
			t.Fatalf("decoded %+v from gopacket's %x, want %+v", d, buf.Bytes(), h)
		}
		it := d.Options()
		for j := 0; it.Next(); j++ {
			o := it.Option()
			if o.Class != opts[j].Class || o.Type != opts[j].Type || !bytes.Equal(o.Data, opts[j].Data) {
				t.Fatalf("option %d: %+v, want %+v", j, o, opts[j])
			}
		}
		if it.Err() != nil {
			t.Fatal(it.Err())
		}
	}
}
