//go:build race

package e2e

// raceEnabled: the race detector keeps shadow memory for every byte the
// process touched, so RSS says nothing about the endpoints under it.
const raceEnabled = true
