package e2e

import (
	"time"

	"geneve64/internal/netsim"
)

func netsimFaults() netsim.Faults {
	return netsim.Faults{Loss: 0.1, Duplicate: 0.1, Reorder: 0.2, ReorderBy: 3 * time.Millisecond, Delay: time.Millisecond}
}
