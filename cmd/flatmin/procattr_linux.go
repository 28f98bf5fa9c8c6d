package main

import "syscall"

// workerAttr puts a sweep's worker in its own process group, so that a
// terminal's Ctrl-C reaches only the driver, which forwards one SIGTERM
// (a second signal would kill a worker while it writes its summary), and
// has the kernel send it SIGTERM if the driver dies.
func workerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
