package dashboards_test

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill cmd when the test binary dies, so
// that a test killed by go test's timeout leaves no Prometheus behind.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
