// Command reaper runs a command so that it cannot outlive the test run that started it.
//
//	reaper [--anchor PID] -- COMMAND [ARGS...]
//
// Without --anchor the command dies with reaper's parent: reaper sets PR_SET_PDEATHSIG(SIGKILL)
// on itself (checking getppid afterwards for the race) and exec()s the command, which keeps the
// setting. With --anchor, reaper stays as a small supervisor: it starts the command in its own
// process group and SIGKILLs that group as soon as the anchor process dies (polled through
// pidfd_open, so pid reuse cannot fool it), or forwards SIGTERM/SIGINT to the group. This lets the
// process kubelet restart without killing the containers it started, while the end of the whole
// test run still kills them.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	anchor := flag.Int("anchor", 0, "pid whose death kills the command's process group")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: reaper [--anchor PID] -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	if *anchor == 0 {
		execWithParentDeathSignal(args)
		return
	}
	os.Exit(superviseUntilAnchorDies(*anchor, args))
}

func execWithParentDeathSignal(args []string) {
	parent := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fail(err)
	}
	if os.Getppid() != parent { // the parent died before prctl took effect
		os.Exit(1)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fail(err)
	}
	fail(syscall.Exec(path, args, os.Environ()))
}

func superviseUntilAnchorDies(anchor int, args []string) int {
	pidfd, err := unix.PidfdOpen(anchor, 0)
	if err != nil { // the anchor is already gone
		return 1
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	group := cmd.Process.Pid
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range signals {
			_ = syscall.Kill(-group, s.(syscall.Signal))
		}
	}()
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if n, err := unix.Poll(fds, -1); err == nil && n > 0 {
				_ = syscall.Kill(-group, syscall.SIGKILL)
				return
			}
		}
	}()
	err = cmd.Wait()
	if exit, ok := err.(*exec.ExitError); ok {
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal())
		}
		return exit.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "reaper:", err)
	os.Exit(127)
}
