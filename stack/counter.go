package stack

import "sync/atomic"

// Counter is a statistic updated on the packet path.
type Counter struct{ n atomic.Uint64 }

// Add adds d.
func (c *Counter) Add(d uint64) { c.n.Add(d) }

// Load returns the count.
func (c *Counter) Load() uint64 { return c.n.Load() }
