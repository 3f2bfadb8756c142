// Package tcpproxy is a TCP proxy on 127.0.0.1 for fault tests: it sits
// between a client and RabbitMQ and can cut every connection, refuse new
// ones, or let the path go silent without closing it (which only heartbeats
// detect), so reconnection code can be tested without touching the broker.
package tcpproxy

import (
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the upstream dial so a dead target cannot pile up
// half-open client connections.
const dialTimeout = 5 * time.Second

// Proxy forwards every connection accepted on Addr to one target address
// and injects the network faults its methods name. It is safe for
// concurrent use.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and every connection's goroutines

	mu        sync.Mutex
	conns     map[*pair]struct{}
	refuse    bool
	blackhole bool
	resume    chan struct{} // closed while no blackhole is on
	budget    int           // client bytes to forward before a blackhole; -1: no limit
	closed    bool
}

// pair is one proxied connection: the accepted client side and, once
// dialled, its upstream side.
type pair struct {
	client net.Conn
	done   chan struct{} // closed by close, releasing goroutines parked in a blackhole
	once   sync.Once

	mu       sync.Mutex
	upstream net.Conn
}

func newPair(c net.Conn) *pair { return &pair{client: c, done: make(chan struct{})} }

// setUpstream records the dialled side; it reports false, closing up, when
// the pair was cut during the dial.
func (pr *pair) setUpstream(up net.Conn) bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	select {
	case <-pr.done:
		_ = up.Close()
		return false
	default:
		pr.upstream = up
		return true
	}
}

func (pr *pair) close() {
	pr.once.Do(func() {
		pr.mu.Lock()
		close(pr.done)
		up := pr.upstream
		pr.mu.Unlock()
		_ = pr.client.Close()
		if up != nil {
			_ = up.Close()
		}
	})
}

// Start listens on a free port of 127.0.0.1 and forwards each accepted
// connection to target, e.g. "127.0.0.1:5672".
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[*pair]struct{}), resume: make(chan struct{}), budget: -1}
	close(p.resume)
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients dial instead of the target, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection now, client and upstream side, as a
// failed network path would end them; new connections are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = make(map[*pair]struct{})
	p.mu.Unlock()
	for pr := range conns {
		pr.close()
	}
}

// SetRefuse, while on, closes each newly accepted connection at once, as a
// client sees an unreachable broker. Open connections are left alone: Cut
// them too to simulate the broker going away.
func (p *Proxy) SetRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

// SetBlackhole, while on, stops forwarding bytes in both directions without
// closing anything, on open and new connections alike: the path goes
// silent and only heartbeats can tell. Bytes read meanwhile are held, not
// dropped, and forwarded once it is turned off, so framing survives.
func (p *Proxy) SetBlackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on == p.blackhole || p.closed {
		return
	}
	p.blackhole = on
	if on {
		p.resume = make(chan struct{})
	} else {
		close(p.resume)
	}
}

// HoldAfter turns the blackhole on once n more bytes have gone from the
// clients to the target, all connections together: a client's progress
// then stops at a known point however fast it runs, as SetBlackhole stops
// it. Negative n never does.
func (p *Proxy) HoldAfter(n int) {
	p.mu.Lock()
	p.budget = n
	p.mu.Unlock()
}

// spend takes up to n bytes of a client's chunk from the budget and
// returns how many may go now; a budget used up turns the blackhole on.
// Called with mu held.
func (p *Proxy) spend(n int) int {
	if p.budget < 0 {
		return n
	}
	n = min(n, p.budget)
	p.budget -= n
	if p.budget == 0 && !p.blackhole {
		p.blackhole = true
		p.resume = make(chan struct{})
		p.budget = -1
	}
	return n
}

// Conns is the number of proxied client connections open now, so tests can
// wait for a client to have (re)connected.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // the listener was closed
		}
		pr := newPair(c)
		p.mu.Lock()
		if p.refuse || p.closed {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[pr] = struct{}{}
		// Added under mu, before Close can see closed and Wait.
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pr)
	}
}

// serve dials the target for one accepted connection and pipes both ways
// until either side ends or the pair is cut.
func (p *Proxy) serve(pr *pair) {
	defer p.wg.Done()
	defer p.forget(pr)
	up, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		pr.close()
		return
	}
	if !pr.setUpstream(up) {
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(pr, up, pr.client, true) }()
	go func() { defer both.Done(); p.pipe(pr, pr.client, up, false) }()
	both.Wait()
}

func (p *Proxy) forget(pr *pair) {
	pr.close()
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// pipe copies src to dst, holding each chunk while a blackhole is on; a
// client's chunks (fromClient) are spent from HoldAfter's budget, and what
// is left when it runs out waits for the blackhole to end. The first side
// to end closes the pair, so the other direction ends too.
func (p *Proxy) pipe(pr *pair, dst, src net.Conn, fromClient bool) {
	defer pr.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for chunk := buf[:n]; len(chunk) > 0; {
			p.mu.Lock()
			held, resume, now := p.blackhole, p.resume, len(chunk)
			if !held && fromClient {
				now = p.spend(now)
			}
			p.mu.Unlock()
			if held || now == 0 {
				select {
				case <-resume:
				case <-pr.done:
					return
				}
				continue
			}
			if _, werr := dst.Write(chunk[:now]); werr != nil {
				return
			}
			chunk = chunk[now:]
		}
		if err != nil {
			return // EOF or a cut: either way the pair is done
		}
	}
}
