//go:build !linux

package main

import "os/exec"

func pinAll(...int) (restore func(), desc string) { return func() {}, "not pinned" }

// dieWithParent is Linux's alone; elsewhere the bench stops its children
// itself when it ends normally.
func dieWithParent(*exec.Cmd) {}
