// Command pause is the sandbox ("pause") container of the local containerd node: it holds the Pod's
// namespaces and does nothing else. As PID 1 of the Pod it reaps the orphans that a shared PID
// namespace hands it, and it exits on SIGINT/SIGTERM as the upstream pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
