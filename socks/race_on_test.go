//go:build race

package socks

// raceEnabled: the race detector inflates memory, so RSS bounds mean
// nothing under it.
const raceEnabled = true
