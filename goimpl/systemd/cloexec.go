// SPDX-License-Identifier: Apache-2.0

package systemd

import "syscall"

func setCloseOnExec(fd int) { syscall.CloseOnExec(fd) }
