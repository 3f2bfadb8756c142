package main

import (
	"reflect"
	"testing"
)

// TestFinished checks that a multiple ack never covers a tag whose handler
// has not finished, and that it comes every k tags of contiguous progress.
func TestFinished(t *testing.T) {
	type ack struct {
		after uint64 // the tag whose finish caused it (0: a flush)
		upTo  uint64
	}
	tests := []struct {
		name  string
		every int
		order []uint64 // tags in the order they finish; 0 flushes
		want  []ack
	}{
		{"in order, every 2", 2, []uint64{1, 2, 3, 4, 5, 0}, []ack{{2, 2}, {4, 4}, {0, 5}}},
		{"a gap holds the ack back", 2, []uint64{2, 3, 4, 0, 1}, []ack{{1, 4}}},
		{"flush covers only the prefix", 10, []uint64{1, 3, 0, 2, 0, 0}, []ack{{0, 1}, {0, 3}}},
		{"reverse order", 1, []uint64{3, 2, 1}, []ack{{1, 3}}},
		{"every 1 acks each contiguous step", 1, []uint64{1, 2, 4, 3}, []ack{{1, 1}, {2, 2}, {3, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f finished
			var got []ack
			for _, tag := range tt.order {
				var upTo uint64
				var ok bool
				if tag == 0 {
					upTo, ok = f.flush()
				} else {
					upTo, ok = f.add(tag, tt.every)
				}
				if ok {
					got = append(got, ack{tag, upTo})
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("acks %v, want %v", got, tt.want)
			}
		})
	}
}
