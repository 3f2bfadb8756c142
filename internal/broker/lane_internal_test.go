package broker

import "testing"

// A lane keeps its publishes on one channel; lanes wrap around the
// channels; without one, publishes take the channels in turn.
func TestPublisherSlotForLane(t *testing.T) {
	p := NewPublisher(nil, 3)
	for lane, want := range map[int]int{1: 0, 2: 1, 3: 2, 4: 0, 8: 1} {
		for range 5 {
			if got := p.slotFor(&Publishing{Lane: lane}); got != p.slots[want] {
				t.Fatalf("lane %d went to another slot than %d", lane, want)
			}
		}
	}
	seen := map[*slot]int{}
	for range 9 {
		seen[p.slotFor(&Publishing{})]++
	}
	for i, s := range p.slots {
		if seen[s] != 3 {
			t.Fatalf("without a lane, slot %d took %d of 9 publishes, want 3", i, seen[s])
		}
	}
}
