package tcpproxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wait bounds every positive expectation; silence checks use quiet.
const (
	wait  = 10 * time.Second
	quiet = 300 * time.Millisecond
)

// echo is an upstream that echoes bytes back and counts its open
// connections, so tests can see the upstream end of a cut.
type echo struct {
	addr string
	open atomic.Int32
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			e.open.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer e.open.Add(-1)
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return e
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// client is one connection through the proxy with a line reader.
type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends msg as a line and reads a line back within timeout.
func (c *client) roundTrip(msg string, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	return c.r.ReadString('\n')
}

func (c *client) mustEcho(t *testing.T, msg string) {
	t.Helper()
	got, err := c.roundTrip(msg, wait)
	if err != nil || got != msg+"\n" {
		t.Fatalf("round trip of %q = %q, %v", msg, got, err)
	}
}

// mustBeClosed checks the connection ends (EOF or reset), not merely stalls.
func (c *client) mustBeClosed(t *testing.T) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(wait))
	_, _ = io.WriteString(c, "x\n") // may fail already; the read decides
	_, err := c.r.ReadString('\n')
	if err == nil {
		t.Fatal("connection still carries data")
	}
	if isTimeout(err) {
		t.Fatalf("connection stalled instead of closing: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRoundTripAndConns(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns before any client = %d", n)
	}
	a, b := dial(t, p), dial(t, p)
	a.mustEcho(t, "hello")
	b.mustEcho(t, "world")
	if n := p.Conns(); n != 2 {
		t.Fatalf("Conns = %d, want 2", n)
	}

	// A payload of many proxy buffers, written while it is read back: both
	// directions must flow at once without loss. The deadline is generous
	// because -race on a loaded machine is slow.
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	_ = a.SetDeadline(time.Now().Add(3 * wait))
	werr := make(chan error, 1)
	go func() { _, err := a.Write(payload); werr <- err }()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(a.r, got); err != nil {
		t.Fatalf("reading the echoed payload: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing the payload: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload changed on the way")
	}

	_ = b.Close()
	eventually(t, func() bool { return p.Conns() == 1 }, "a closed client is still counted")
	eventually(t, func() bool { return e.open.Load() == 1 }, "the closed client's upstream is still open")
}

func TestCutClosesBothEndsAndStillAccepts(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	a, b := dial(t, p), dial(t, p)
	a.mustEcho(t, "before")
	b.mustEcho(t, "before")

	p.Cut()
	a.mustBeClosed(t)
	b.mustBeClosed(t)
	eventually(t, func() bool { return p.Conns() == 0 }, "cut connections still counted")
	eventually(t, func() bool { return e.open.Load() == 0 }, "upstream side of a cut connection still open")

	c := dial(t, p)
	c.mustEcho(t, "after the cut")
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns after reconnecting = %d, want 1", n)
	}
}

func TestRefuse(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	live := dial(t, p)
	live.mustEcho(t, "before")

	p.SetRefuse(true)
	refused := dial(t, p) // the kernel completes the handshake; the proxy then closes it
	refused.mustBeClosed(t)
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns while refusing = %d, want 1 (only the open one)", n)
	}
	live.mustEcho(t, "open connections are left alone")

	p.SetRefuse(false)
	dial(t, p).mustEcho(t, "accepted again")
}

func TestBlackholeStallsThenResumes(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	old := dial(t, p)
	old.mustEcho(t, "before")

	p.SetBlackhole(true)
	p.SetBlackhole(true) // repeated calls are harmless
	if _, err := old.roundTrip("held", quiet); !isTimeout(err) {
		t.Fatalf("open connection during blackhole: err = %v, want a timeout (silence, not a close)", err)
	}
	fresh := dial(t, p)
	if _, err := fresh.roundTrip("held too", quiet); !isTimeout(err) {
		t.Fatalf("new connection during blackhole: err = %v, want a timeout", err)
	}
	// The new connection is still accepted and dialled upstream; nothing is
	// closed.
	eventually(t, func() bool { return p.Conns() == 2 && e.open.Load() == 2 }, "blackhole closed or lost a connection")

	p.SetBlackhole(false)
	// The held lines arrive first, then new data flows.
	for _, c := range []struct {
		c    *client
		held string
	}{{old, "held\n"}, {fresh, "held too\n"}} {
		_ = c.c.SetDeadline(time.Now().Add(wait))
		if line, err := c.c.r.ReadString('\n'); err != nil || line != c.held {
			t.Fatalf("after blackhole: %q, %v; want %q", line, err, c.held)
		}
		c.c.mustEcho(t, "resumed")
	}
}

func TestCutDuringBlackhole(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	c := dial(t, p)
	c.mustEcho(t, "before")
	p.SetBlackhole(true)
	if _, err := c.roundTrip("held", quiet); !isTimeout(err) {
		t.Fatalf("during blackhole: %v, want a timeout", err)
	}
	// What the fault suite does: a silent path, then the clients give up.
	p.Cut()
	c.mustBeClosed(t)
	eventually(t, func() bool { return p.Conns() == 0 && e.open.Load() == 0 }, "cut while silent left connections open")
	p.SetBlackhole(false)
	dial(t, p).mustEcho(t, "after")
}

func TestUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p := startProxy(t, dead)
	dial(t, p).mustBeClosed(t)
	eventually(t, func() bool { return p.Conns() == 0 }, "a connection whose dial failed is still counted")
}

func TestCloseIsIdempotent(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	c := dial(t, p)
	c.mustEcho(t, "before")
	p.SetBlackhole(true) // Close must not hang on goroutines parked in it

	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Close hung")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c.mustBeClosed(t)
	if n := p.Conns(); n != 0 {
		t.Fatalf("Conns after Close = %d", n)
	}
	eventually(t, func() bool { return e.open.Load() == 0 }, "upstream still open after Close")
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c2.Close()
		t.Fatal("a closed proxy still accepts connections")
	}
	// The other methods are harmless after Close.
	p.Cut()
	p.SetRefuse(true)
	p.SetBlackhole(false)
}

// Faults injected while clients connect and send must not race or hang;
// go test -race checks the former, Close returning the latter.
func TestFaultsUnderTraffic(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", p.Addr(), wait)
				if err != nil {
					continue
				}
				_ = c.SetDeadline(time.Now().Add(50 * time.Millisecond))
				_, _ = io.WriteString(c, "ping\n")
				_, _ = bufio.NewReader(c).ReadString('\n')
				_ = c.Close()
			}
		}()
	}
	for i := 0; i < 50; i++ {
		p.Cut()
		p.SetBlackhole(i%2 == 0)
		p.SetRefuse(i%3 == 0)
		_ = p.Conns()
		time.Sleep(2 * time.Millisecond)
	}
	p.SetBlackhole(false)
	p.SetRefuse(false)
	close(stop)
	wg.Wait()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("Close hung after faults under traffic")
	}
	eventually(t, func() bool { return e.open.Load() == 0 }, "upstream connections left open")
}

// HoldAfter lets exactly its budget of client bytes through, then holds
// the rest as a blackhole does, until it is turned off.
func TestHoldAfter(t *testing.T) {
	e := startEcho(t)
	p := startProxy(t, e.addr)
	c := dial(t, p)
	p.HoldAfter(10)
	c.mustEcho(t, "abc")  // 4 bytes
	c.mustEcho(t, "defg") // 5 more: one left
	if _, err := c.roundTrip("hij", quiet); !isTimeout(err) {
		t.Fatalf("past the budget: err = %v, want a timeout (held)", err)
	}
	p.SetBlackhole(false)
	_ = c.SetDeadline(time.Now().Add(wait))
	if line, err := c.r.ReadString('\n'); err != nil || line != "hij\n" {
		t.Fatalf("after the hold: %q, %v; want the held line whole", line, err)
	}
	c.mustEcho(t, "no budget any more: everything flows")
}
