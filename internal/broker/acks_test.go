package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeChannel acknowledges as RabbitMQ does: a frame must name an
// outstanding tag, even with multiple set (otherwise the broker closes the
// channel with PRECONDITION_FAILED "unknown delivery tag"); multiple
// settles every outstanding tag up to it.
type fakeChannel struct {
	mu          sync.Mutex
	outstanding map[uint64]bool
	acked       map[uint64]int
	nacked      map[uint64]int
	frames      int
	err         error
}

func newFakeChannel(n int) *fakeChannel {
	f := &fakeChannel{outstanding: map[uint64]bool{}, acked: map[uint64]int{}, nacked: map[uint64]int{}}
	for tag := uint64(1); tag <= uint64(n); tag++ {
		f.outstanding[tag] = true
	}
	return f
}

func (f *fakeChannel) settle(tag uint64, multiple bool, into map[uint64]int, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames++
	if !f.outstanding[tag] {
		if f.err == nil {
			f.err = fmt.Errorf("%s of tag %d (multiple %v): unknown delivery tag", what, tag, multiple)
		}
		return f.err
	}
	for t := range f.outstanding {
		if t == tag || (multiple && t < tag) {
			delete(f.outstanding, t)
			into[t]++
		}
	}
	return nil
}

func (f *fakeChannel) Ack(tag uint64, multiple bool) error {
	return f.settle(tag, multiple, f.acked, "ack")
}

func (f *fakeChannel) Nack(tag uint64, multiple, requeue bool) error {
	return f.settle(tag, multiple, f.nacked, "nack")
}

// Deliveries settled in random order, some nacked, some by the consumer
// without a handler: every frame names an outstanding tag, every ack and
// nack reaches the broker exactly once, and acks share frames.
func TestAckerSettlesEachTagOnce(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 1))
		n := 1 + r.IntN(300)
		f := newFakeChannel(n)
		a := newAcker(f, 1+r.IntN(64))
		tags := make([]uint64, n)
		for i := range tags {
			tags[i] = uint64(i + 1)
			a.handed()
		}
		// Handlers finish out of order, but not wildly: shuffle within a
		// window, as a pool of handlers does.
		win := 1 + r.IntN(16)
		for i := range tags {
			j := min(n-1, i+r.IntN(win))
			tags[i], tags[j] = tags[j], tags[i]
		}
		wantNack := map[uint64]bool{}
		for _, tag := range tags {
			var err error
			if r.IntN(10) == 0 {
				wantNack[tag] = true
				err = a.nack(tag, true, true)
			} else {
				err = a.ack(tag)
			}
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		a.flushAndClose()
		a.close()
		if f.err != nil {
			t.Fatalf("seed %d (n %d, batch %d): %v", seed, n, a.batch, f.err)
		}
		if len(f.outstanding) != 0 {
			t.Fatalf("seed %d: %d tags never settled", seed, len(f.outstanding))
		}
		for tag := uint64(1); tag <= uint64(n); tag++ {
			if wantNack[tag] != (f.nacked[tag] == 1) || wantNack[tag] == (f.acked[tag] == 1) {
				t.Fatalf("seed %d: tag %d acked %d, nacked %d; nack wanted %v", seed, tag, f.acked[tag], f.nacked[tag], wantNack[tag])
			}
		}
		if n >= 100 && a.batch >= 4 && f.frames >= n/2 {
			t.Errorf("seed %d: %d frames for %d deliveries in batches of %d: acks were not coalesced", seed, f.frames, n, a.batch)
		}
	}
}

// A delivery that runs long at the head does not hold back the acks of
// those finished after it for more than about an interval: they go out one
// by one.
func TestAckerStuckHeadReleasesTheRest(t *testing.T) {
	f := newFakeChannel(10)
	a := newAcker(f, 1000) // batch 250: only the timer sends
	for range 10 {
		a.handed()
	}
	for tag := uint64(2); tag <= 10; tag++ {
		if err := a.ack(tag); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		left := len(f.outstanding)
		f.mu.Unlock()
		if left == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tags still outstanding behind a running head, want 1", left)
		}
		time.Sleep(time.Millisecond)
	}
	if !f.outstanding[1] {
		t.Fatal("the running head was settled")
	}
	a.idle() // the consumer has nothing more: the last ack goes at once
	if err := a.ack(1); err != nil {
		t.Fatal(err)
	}
	a.close()
	if f.err != nil || len(f.outstanding) != 0 {
		t.Fatalf("err %v, outstanding %v", f.err, f.outstanding)
	}
}

// An idle consumer sends at once: with no delivery waiting, the last
// running delivery's ack does not wait for the timer, nor do acks made
// before the consumer ran dry.
func TestAckerIdleSendsAtOnce(t *testing.T) {
	f := newFakeChannel(5)
	a := newAcker(f, 1000)
	a.handed()
	a.handed()
	_ = a.ack(1)
	a.idle()
	if len(f.outstanding) != 4 || f.frames != 1 {
		t.Errorf("consumer ran dry: outstanding %v, %d frames; want tag 1 acked in one frame", f.outstanding, f.frames)
	}
	_ = a.ack(2)
	if len(f.outstanding) != 3 || f.frames != 2 {
		t.Errorf("last running ack while dry: outstanding %v, %d frames; want tag 2 acked at once", f.outstanding, f.frames)
	}
	f.frames = 0
	for range 3 {
		a.handed()
	}
	a.idle()
	_ = a.ack(4)
	_ = a.ack(3) // 5 still runs: these wait for it, or for the timer
	_ = a.ack(5)
	f.mu.Lock()
	left := len(f.outstanding)
	f.mu.Unlock()
	if left != 0 {
		t.Errorf("after the last running delivery's ack, with none waiting: %d outstanding, want none", left)
	}
	a.close()
}

// Eight handlers settle concurrently, some slowly, while the timer fires:
// the broker still sees each tag settled once, and never an unknown one.
func TestAckerConcurrentHandlers(t *testing.T) {
	const n = 5000
	f := newFakeChannel(n)
	a := newAcker(f, 64)
	work := make(chan uint64)
	var wg sync.WaitGroup
	var nacks sync.Map
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for tag := range work {
				if r.IntN(50) == 0 {
					time.Sleep(time.Duration(r.IntN(5)) * time.Millisecond) // a slow one holds the head
				}
				var err error
				if r.IntN(20) == 0 {
					nacks.Store(tag, true)
					err = a.nack(tag, true, true)
				} else {
					err = a.ack(tag)
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for tag := uint64(1); tag <= n; tag++ {
		a.handed()
		work <- tag
	}
	close(work)
	wg.Wait()
	a.flushAndClose()
	a.close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || len(f.outstanding) != 0 {
		t.Fatalf("err %v, %d outstanding", f.err, len(f.outstanding))
	}
	for tag := uint64(1); tag <= n; tag++ {
		_, nack := nacks.Load(tag)
		if f.acked[tag]+f.nacked[tag] != 1 || nack != (f.nacked[tag] == 1) {
			t.Fatalf("tag %d acked %d nacked %d (nack wanted %v)", tag, f.acked[tag], f.nacked[tag], nack)
		}
	}
	t.Logf("%d deliveries, %d frames", n, f.frames)
}

// An ack above a head that keeps moving, but by less than the ack's own
// tag in each interval, is still sent within two intervals (and some
// scheduling slack), on its own.
func TestAckerHeadMovingSlowly(t *testing.T) {
	f := newFakeChannel(60)
	a := newAcker(f, 400) // batch 100
	for range 60 {
		a.handed()
	}
	if err := a.ack(60); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for tag := uint64(1); tag < 60; tag++ {
		for t0 := time.Now(); time.Since(t0) < 1200*time.Microsecond; {
		}
		f.mu.Lock()
		got := f.acked[60]
		f.mu.Unlock()
		if got > 0 {
			if held := time.Since(start); held > 4*ackInterval+10*time.Millisecond {
				t.Errorf("ack of tag 60 held %v behind a moving head, want about 2 intervals (%v)", held, 2*ackInterval)
			}
			return
		}
		_ = a.ack(tag)
	}
	t.Errorf("ack of tag 60 held %v (ackInterval %v)", time.Since(start), ackInterval)
}

// An ack made after its acker closed (its channel was closed on purpose
// while a handler still ran) says it will not be sent.
func TestAckerClosedRefusesAcks(t *testing.T) {
	f := newFakeChannel(4)
	a := newAcker(f, 64)
	a.handed()
	a.handed()
	a.flushAndClose()
	if err := a.ack(1); !errors.Is(err, ErrStaleDelivery) {
		t.Errorf("ack after close: %v, want ErrStaleDelivery", err)
	}
	if err := a.nack(2, true, true); !errors.Is(err, ErrStaleDelivery) {
		t.Errorf("nack after close: %v, want ErrStaleDelivery", err)
	}
	if f.frames != 0 {
		t.Errorf("%d frames sent after close", f.frames)
	}
}
