package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
var stopGrace = 5 * time.Second

// reapTimeout bounds the wait for the stopped process group to disappear.
const reapTimeout = 10 * time.Second

// Process is one program run by the testbed: in its own process group, with
// stdout and stderr in <Dir>/logs/<Name>.log, killed when the test binary
// dies (Pdeathsig) and stopped with the testbed.
type Process struct {
	Name    string
	LogPath string
	Args    []string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed once the process has been waited for
	err  error         // wait status; read only after done is closed

	stopOnce sync.Once
	killed   bool // Stop needed SIGKILL
	tier     int  // Testbed.Stop stops higher tiers after lower ones: users before servers
}

// Pid is the process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its wait status.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after a few seconds, and
// waits for the process. It is idempotent. The exit status of a process that
// was terminated by Stop is not an error.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		if exited, _ := p.Exited(); !exited {
			pgid := p.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(stopGrace):
				p.killed = true
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.done
			}
		}
		// Stragglers in the group (none of our programs fork, but a caller's
		// might), then wait until init has reaped them: kill(-pgid, 0) fails
		// with ESRCH once no process, zombies included, is left in the group.
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		// (Orphans are reparented to init, which may take a second or two.)
		for deadline := time.Now().Add(reapTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
		}
	})
	<-p.done
	return nil
}

// exitError describes how the process ended, for error messages.
func (p *Process) exitError() error {
	if exited, err := p.Exited(); exited {
		if err == nil {
			return fmt.Errorf("%s exited (status 0); see %s", p.Name, p.LogPath)
		}
		return fmt.Errorf("%s exited: %v; see %s", p.Name, err, p.LogPath)
	}
	return nil
}

// tail returns the last n lines of the process log.
func (p *Process) tail(n int) []string { return tailFile(p.LogPath, n) }

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read %s: %v)", path, err)}
	}
	defer f.Close()
	// Logs of a short test are small, but skip to the last few MB to bound the work.
	const maxRead = 4 << 20
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		_, _ = f.Seek(st.Size()-maxRead, io.SeekStart)
	}
	ring := make([]string, 0, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(ring) == n {
			ring = append(ring[:0], ring[1:]...)
		}
		ring = append(ring, sc.Text())
	}
	return ring
}

// spawnRequest asks the spawner goroutine to start a command.
type spawnRequest struct {
	cmd   *exec.Cmd
	reply chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnRequest
)

// spawn starts cmd from one OS thread that never exits. Pdeathsig is sent when
// the *thread* that forked the child exits, not the process; starting every
// child from a locked thread that lives as long as the test binary makes
// "kill the children when the test binary dies" reliable.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until exit
			for r := range spawnCh {
				r.reply <- r.cmd.Start()
			}
		}()
	})
	reply := make(chan error, 1)
	spawnCh <- spawnRequest{cmd: cmd, reply: reply}
	return <-reply
}

// startProcess runs path with args and env (added to the test binary's
// environment) in its own process group, logging to logDir/name.log.
func startProcess(logDir, workDir, name, path string, args, env []string) (*Process, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = workDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	fmt.Fprintf(logf, "### testbed: %s %q\n", path, args)
	if err := spawn(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, path, err)
	}
	p := &Process{Name: name, LogPath: logPath, Args: args, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}
