package systemd

import "syscall"

func setCloseOnExec(fd int) { syscall.CloseOnExec(fd) }
