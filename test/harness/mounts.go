package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// instanceMountScript mounts a bindfs view of $1 on $1 itself, in the
// mount namespace it runs in, then becomes the command that follows.
// bindfs returns once the mount is in place (it daemonizes after
// mounting).
const instanceMountScript = `root=$1; shift
bindfs --no-allow-other "$root" "$root" || { echo "instance mount: bindfs $root failed" >&2; exit 97; }
exec "$@"`

// InstanceMountCapable reports why InstanceMount cannot work here ("" if
// it can): it needs root (namespaces, mounts), /dev/fuse and bindfs.
func InstanceMountCapable() string {
	if os.Geteuid() != 0 {
		return "a mount namespace per instance needs root"
	}
	if _, err := exec.LookPath("bindfs"); err != nil {
		return "the bindfs command is missing (Debian package bindfs)"
	}
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err != nil {
		return fmt.Sprintf("cannot open /dev/fuse: %v", err)
	} else {
		f.Close()
	}
	return ""
}

// InstanceMountArgs is argv run with its own bindfs view of root mounted on
// root: the command line to hand to whatever enters the namespaces (see
// InstanceMount, and the chaos bench, which runs it under ip netns exec).
func InstanceMountArgs(root string, argv []string) []string {
	return append([]string{"sh", "-c", instanceMountScript, "sh", root}, argv...)
}

// InstanceMountAttr is the process attributes for InstanceMountArgs: a new
// mount namespace (private propagation, so the bindfs mount stays in it)
// and a new PID namespace, in which the command ends up as process 1. When
// that process dies, however it dies (kill -9 included), the kernel kills
// everything else in the namespace, bindfs with it, and the mount goes
// away with the namespace: nothing is left behind. Signals from the test
// reach the command itself: it is the process started (after two execs).
// As process 1 it receives only the signals it handles, and SIGKILL and
// SIGSTOP; SIGCONT still resumes it.
func InstanceMountAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Cloneflags:   syscall.CLONE_NEWPID,
	}
}

// InstanceMount returns argv as a command that runs with its own bindfs
// view of root mounted on root.
func InstanceMount(root string, argv []string) *exec.Cmd {
	args := InstanceMountArgs(root, argv)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = InstanceMountAttr()
	return cmd
}

// InstancePath is path as instance name sees it (through its own mount
// namespace, by /proc/PID/root), for stat and reads from the test.
func (c *Cluster) InstancePath(name, path string) (string, error) {
	p := c.Proc(name)
	if p == nil {
		return "", fmt.Errorf("%s not started", name)
	}
	select {
	case <-p.done:
		return "", fmt.Errorf("%s has exited", name)
	default:
	}
	return filepath.Join("/proc", strconv.Itoa(p.Cmd.Process.Pid), "root", path), nil
}
