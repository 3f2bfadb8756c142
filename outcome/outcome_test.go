package outcome

import "testing"

// The values are a wire contract: dead-letter headers, result kinds and
// metric labels that dashboards and other programs match on.
func TestWireValues(t *testing.T) {
	want := map[Reason]Outcome{
		"unknown_task": Dead, "undecodable": Dead, "too_large": Dead,
		"exhausted": Dead, "permanent": Dead, "expired": Expired, "delivery_limit": Dead,
	}
	if len(Reasons()) != len(want) {
		t.Fatalf("Reasons() = %v, want the %d of the contract", Reasons(), len(want))
	}
	for _, r := range Reasons() {
		o, ok := want[r]
		if !ok {
			t.Errorf("reason %q is not in the contract", r)
		} else if r.Outcome() != o {
			t.Errorf("%q.Outcome() = %q, want %q", r, r.Outcome(), o)
		}
	}
	seen := map[Outcome]bool{}
	for _, o := range Outcomes() {
		seen[o] = true
	}
	for _, o := range []Outcome{"success", "retry", "dead", "expired", "requeued"} {
		if !seen[o] {
			t.Errorf("Outcomes() lacks %q", o)
		}
	}
	if len(seen) != 5 {
		t.Errorf("Outcomes() = %v, want the 5 of the contract", Outcomes())
	}
}
