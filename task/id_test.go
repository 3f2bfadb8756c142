package task

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewIDCarriesItsTime(t *testing.T) {
	seen := map[string]bool{}
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, off := range []time.Duration{0, 255, 256, 999_999, time.Millisecond, 123_456_789, 59*time.Second + 999_999_999} {
		at := base.Add(off)
		for range 3 {
			id := NewID(at)
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
				t.Fatalf("NewID(%v) = %q: version %d variant %v err %v, want a version 7 RFC 9562 UUID", at, id, u.Version(), u.Variant(), err)
			}
			if seen[id] {
				t.Fatalf("NewID(%v) repeated %q", at, id)
			}
			seen[id] = true
			got, ok := IDTime(id)
			if d := got.Sub(at); !ok || d > 0 || d <= -256 {
				t.Errorf("IDTime(NewID(%v)) = %v, %v: want within 256 ns below", at, got, ok)
			}
		}
	}
	// Ids sort by time, as strings too.
	if a, b := NewID(base), NewID(base.Add(time.Microsecond)); a >= b {
		t.Errorf("NewID a microsecond later sorts first: %q >= %q", b, a)
	}
}

func TestIDTimeOfOtherIDs(t *testing.T) {
	ms := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixMilli()
	v7 := func(randA uint16) string {
		u := uuid.New()
		for i := 0; i < 6; i++ {
			u[i] = byte(ms >> (40 - 8*i))
		}
		u[6], u[7] = 0x70|byte(randA>>8)&0x0f, byte(randA)
		return u.String()
	}
	// Another generator's version 7 id: its time to the millisecond, even
	// when the sub-millisecond bits hold a counter out of a fraction's range.
	for _, randA := range []uint16{0, 3906, 3907, 0xfff} {
		got, ok := IDTime(v7(randA))
		if d := got.Sub(time.UnixMilli(ms)); !ok || d < 0 || d >= time.Millisecond {
			t.Errorf("rand_a %#x: IDTime = %v, %v, want within the millisecond %v", randA, got, ok, time.UnixMilli(ms))
		}
	}
	for _, id := range []string{
		"", "order-42", uuid.NewString(), // version 4
		"0f8fad5b-d9cb-169f-a165-70867728950e", // version 1
		"0192f0c1-2a3b-7c4d-0e5f-60718293a4b5", // version 7, wrong variant
		"0192f0c1-2a3b-7c4d-8e5f-60718293a4b",  // one short
		"urn:uuid:0192f0c1-2a3b-7c4d-8e5f-60718293a4b5",
		"{0192f0c1-2a3b-7c4d-8e5f-60718293a4b5}x",
	} {
		if got, ok := IDTime(id); ok {
			t.Errorf("IDTime(%q) = %v, true; want false", id, got)
		}
	}
}

func TestEnqueuedAt(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 7, 654_321_000, time.UTC)
	stamp := time.Unix(at.Unix(), 0) // as AMQP carries it
	fresh := NewID(at)
	stale := NewID(at.Add(-3 * time.Second))
	idTime, _ := IDTime(fresh)
	tests := []struct {
		name  string
		us    int64
		id    string
		stamp time.Time
		want  time.Time
	}{
		{"header wins", at.Add(time.Minute).UnixMicro(), fresh, stamp, at.Add(time.Minute).Truncate(time.Microsecond)},
		{"the id, within the timestamp's second", 0, fresh, stamp, idTime},
		{"a stale id is not the enqueue time", 0, stale, stamp, stamp},
		{"an id that carries no time", 0, "order-42", stamp, stamp},
		{"a bad header value is ignored", -5, fresh, stamp, idTime},
		{"no timestamp: the id cannot be checked", 0, fresh, time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		if got := enqueuedAt(tc.us, tc.id, tc.stamp); !got.Equal(tc.want) {
			t.Errorf("%s: enqueuedAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The producer leaves x-warren-enqueued-at out when the id carries the
// time, and the worker reads the same time back either way.
func TestEnqueueTimeTravelsInTheIDOrTheHeader(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 7, 999_900_000, time.UTC)
	for _, tc := range []struct {
		name       string
		id         string
		wantHeader bool
	}{
		{"warren's own id", NewID(at), false},
		{"a caller's id", "order-42", true},
		{"a version 4 id", uuid.NewString(), true},
		{"a version 7 id minted earlier", NewID(at.Add(-2 * time.Millisecond)), true},
		{"a version 7 id from the next second", NewID(at.Add(200 * time.Microsecond)), true},
	} {
		in := Message{Task: "t", ID: tc.id, EnqueuedAt: at}
		h := in.BuildHeaders(nil)
		if _, has := h[HeaderEnqueuedAt]; has != tc.wantHeader {
			t.Errorf("%s: header %s sent = %v, want %v", tc.name, HeaderEnqueuedAt, has, tc.wantHeader)
		}
		out := Message{ID: tc.id, Timestamp: time.Unix(at.Unix(), 0)}
		if err := out.ParseHeaders(h); err != nil {
			t.Fatal(err)
		}
		if d := at.Sub(out.EnqueuedAt); d < 0 || d >= time.Microsecond {
			t.Errorf("%s: EnqueuedAt = %v, want %v to the microsecond", tc.name, out.EnqueuedAt, at)
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	now := time.Now()
	for b.Loop() {
		_ = NewID(now)
	}
}

func BenchmarkIDTime(b *testing.B) {
	id := NewID(time.Now())
	for b.Loop() {
		if _, ok := IDTime(id); !ok {
			b.Fatal("no time")
		}
	}
}
