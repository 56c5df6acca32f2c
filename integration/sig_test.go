package integration

import "syscall"

var sigwinch = syscall.SIGWINCH
