package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestCoalescingConnKeepsEveryWriteWholeAndInOrder(t *testing.T) {
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	const writers, each = 16, 500
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := fmt.Fprintf(cc, "<%02d:%04d>", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if len(b) != writers*each*len("<00:0000>") {
		t.Fatalf("read %d bytes, want %d", len(b), writers*each*len("<00:0000>"))
	}
	next := make([]int, writers)
	for len(b) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(b[:9]), "<%02d:%04d>", &w, &i); err != nil {
			t.Fatalf("torn write at %q: %v", b[:min(len(b), 20)], err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: got write %d, want %d", w, i, next[w])
		}
		next[w]++
		b = b[9:]
	}
}

func TestCoalescingConnCloseSendsWhatIsBuffered(t *testing.T) {
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	want := bytes.Repeat([]byte("x"), 300<<10)
	if _, err := cc.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, want %d", len(b), len(want))
	}
	if _, err := cc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v, want net.ErrClosed", err)
	}
}

func TestCoalescingConnBlocksWritersWhenThePeerStopsReading(t *testing.T) {
	client, _ := tcpPair(t) // the server end never reads
	cc := newCoalescingConn(client)
	chunk := make([]byte, 64<<10)
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for {
			if _, err := cc.Write(chunk); err != nil {
				wrote <- n
				return
			}
			n += len(chunk)
		}
	}()
	// The kernel's socket buffers take a few MiB; past them and the
	// coalescing limit, the writer must be held rather than buffered.
	time.Sleep(500 * time.Millisecond)
	cc.mu.Lock()
	buffered := len(cc.buf)
	cc.mu.Unlock()
	if buffered > coalesceLimit+len(chunk) {
		t.Fatalf("%d bytes buffered, limit %d", buffered, coalesceLimit)
	}
	start := time.Now()
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > closeFlushTimeout+time.Second {
		t.Errorf("close took %v with a stalled peer, want about %v", el, closeFlushTimeout)
	}
	select {
	case <-wrote:
	case <-time.After(2 * time.Second):
		t.Fatal("blocked writer was not released by Close")
	}
}

func TestCoalescingConnFailsWritesAfterTheSocketBreaks(t *testing.T) {
	client, server := tcpPair(t)
	cc := newCoalescingConn(client)
	defer cc.Close()
	server.(*net.TCPConn).SetLinger(0) // close with a reset
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := cc.Write([]byte("ping")); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("writes kept succeeding on a reset connection")
}

// The dialer bounds the handshake with a deadline on the socket and
// amqp091-go clears it through the connection once open; writes after the
// old deadline must still go out.
func TestCoalescingConnClearedDeadlineLetsWritesThrough(t *testing.T) {
	client, server := tcpPair(t)
	if err := client.SetDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	cc := newCoalescingConn(client)
	defer cc.Close()
	if err := cc.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := cc.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "after" {
		t.Fatalf("peer read %q, %v: a write after the cleared handshake deadline was lost", got, err)
	}
}
