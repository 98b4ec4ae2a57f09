package testbed

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 250 * time.Millisecond

// WaitFor evaluates cond about every 250ms until it returns true, timeout
// passes or ctx ends. An error from cond with false does not end the wait: it
// is kept and reported if the wait times out, so a condition may always
// return an error describing what it saw (ignored once it returns true). The error of a failed wait names what
// and the last error cond returned; when ctx was cancelled with a cause
// (context.WithCancelCause), the cause is included too.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last error
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		// An error caused by the end of the wait itself (a request cut short,
		// a rate limiter refusing to wait past the deadline) says nothing new.
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("waiting for %s: gave up after %s", what, time.Since(start).Round(time.Millisecond))
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) {
				msg += ": " + cause.Error()
			}
			if last != nil {
				return fmt.Errorf("%s; last error: %w", msg, last)
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

// waitProcs is WaitFor that gives up at once, naming the process, when one of
// procs exits.
func waitProcs(ctx context.Context, timeout time.Duration, what string, procs []*Process, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, p := range procs {
		go func() {
			select {
			case <-p.Done():
				cancel(p.exitError())
			case <-ctx.Done():
			}
		}()
	}
	return WaitFor(ctx, timeout, what, cond)
}

// portSet holds reserved free TCP ports on 127.0.0.1: their listeners stay
// open until release is called for a port, right before the program that
// binds it starts, which keeps the window for a clash small.
type portSet struct {
	mu sync.Mutex
	ls map[int]net.Listener
}

// reservePorts reserves n distinct free ports.
func reservePorts(n int) (*portSet, []int, error) {
	ps := &portSet{ls: map[int]net.Listener{}}
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ps.releaseAll()
			return nil, nil, fmt.Errorf("reserving a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		ps.ls[port] = l
		ports = append(ports, port)
	}
	return ps, ports, nil
}

func (ps *portSet) release(ports ...int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ports {
		if l, ok := ps.ls[p]; ok {
			l.Close()
			delete(ps.ls, p)
		}
	}
}

func (ps *portSet) releaseAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for p, l := range ps.ls {
		l.Close()
		delete(ps.ls, p)
	}
}

// localHTTP is the client for the testbed's own health checks. It skips TLS
// verification: kube-controller-manager and kube-scheduler serve self-signed
// certificates, and these checks only ever talk to 127.0.0.1.
var localHTTP = &http.Client{
	Timeout: 5 * time.Second,
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health checks only
		DisableKeepAlives: true,
	},
}

// httpGet fetches url and returns the body when the status is 200.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := localHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// httpOK is a WaitFor condition: url answers 200 (and, if want is set, a body
// containing it).
func httpOK(url, want string) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		body, err := httpGet(ctx, url)
		if err != nil {
			return false, err
		}
		if want != "" && !strings.Contains(string(body), want) {
			return false, fmt.Errorf("GET %s: body %q lacks %q", url, truncate(string(body), 200), want)
		}
		return true, nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// FreeAddr returns a 127.0.0.1 address with a port free right now, for a
// program the caller is about to start.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
