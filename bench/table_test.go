package main

import (
	"reflect"
	"testing"
)

// The baseline after combine is the raw row with the highest median rate,
// not the fastest variant of each round: warren is measured against that
// one variant round by round, and the round's fastest stays as the
// stricter figure.
func TestCombinePicksTheBestRawRow(t *testing.T) {
	round := func(warren, a, b float64) []row {
		return []row{newRow("drain", []side{
			{name: "a", r: result{Rate: a}},
			{name: "b", r: result{Rate: b}},
			{name: "warren", r: result{Rate: warren}},
		}, false, false)}
	}
	// b's median (30) beats a's (20), though a is fastest in round 2.
	got := combine([][]row{round(30, 20, 30), round(20, 40, 20), round(30, 10, 60)})[0]
	if got.bestLabel() != "b" || got.raw.Rate != 30 {
		t.Fatalf("best raw row %s at %v, want b at 30", got.bestLabel(), got.raw.Rate)
	}
	if want := []float64{1, 1, 0.5}; !reflect.DeepEqual(got.ratios, want) {
		t.Errorf("ratios %v, want %v (warren / b in each round)", got.ratios, want)
	}
	if want := []float64{1, 0.5, 0.5}; !reflect.DeepEqual(got.roundMax, want) {
		t.Errorf("stricter ratios %v, want %v (warren / each round's fastest)", got.roundMax, want)
	}
	if got.ratio() != 1 || median(got.roundMax) != 0.5 {
		t.Errorf("ratio %v, stricter %v; want 1 and 0.5", got.ratio(), median(got.roundMax))
	}
}
