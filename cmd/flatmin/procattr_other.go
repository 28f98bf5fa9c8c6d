//go:build !linux

package main

import "syscall"

// workerAttr leaves workers in the driver's process group where Linux's
// process-group and parent-death settings are not available.
func workerAttr() *syscall.SysProcAttr { return nil }
