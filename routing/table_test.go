package routing

import (
	"errors"
	"strings"
	"testing"
)

func TestTableLookup(t *testing.T) {
	media := Route{Exchange: "media", Key: "video"}
	fallback := Route{Exchange: "tasks", Key: "default"}

	tests := []struct {
		name    string
		table   *Table
		task    string
		want    Route
		noRoute bool
	}{
		{name: "own route", table: NewTable().Add("process_media", media), task: "process_media", want: media},
		{name: "own route beats default", table: NewTable().SetDefault(fallback).Add("process_media", media), task: "process_media", want: media},
		{name: "default route", table: NewTable().Add("process_media", media).SetDefault(fallback), task: "send_email", want: fallback},
		{name: "later Add replaces", table: NewTable().Add("t", media).Add("t", ToQueue("q")), task: "t", want: ToQueue("q")},
		{name: "later SetDefault replaces", table: NewTable().SetDefault(media).SetDefault(fallback), task: "t", want: fallback},
		{name: "default exchange route", table: NewTable().Add("t", ToQueue("video")), task: "t", want: Route{Key: "video"}},
		{name: "no route, no default", table: NewTable().Add("process_media", media), task: "send_email", noRoute: true},
		{name: "empty table", table: NewTable(), task: "send_email", noRoute: true},
		{name: "zero table", table: &Table{}, task: "send_email", noRoute: true},
		{name: "zero table with Add", table: (&Table{}).Add("t", media), task: "t", want: media},
		{name: "nil table", table: nil, task: "send_email", noRoute: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.table.Lookup(tc.task)
			if tc.noRoute {
				if !errors.Is(err, ErrNoRoute) {
					t.Fatalf("Lookup(%q) = %v, %v; want ErrNoRoute", tc.task, got, err)
				}
				if !strings.Contains(err.Error(), `"`+tc.task+`"`) {
					t.Errorf("error %q does not name task %q", err, tc.task)
				}
				if got != (Route{}) {
					t.Errorf("Lookup returned route %+v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q) error = %v", tc.task, err)
			}
			if got != tc.want {
				t.Errorf("Lookup(%q) = %+v, want %+v", tc.task, got, tc.want)
			}
		})
	}
}

// SetDefault keeps its own copy: changing the caller's Route later does not
// move the default.
func TestSetDefaultCopies(t *testing.T) {
	r := Route{Exchange: "media", Key: "video"}
	table := NewTable().SetDefault(r)
	r.Key = "audio"
	got, err := table.Lookup("any")
	if err != nil || got.Key != "video" {
		t.Errorf("Lookup = %+v, %v; want key video", got, err)
	}
}

func TestToQueue(t *testing.T) {
	if got, want := ToQueue("video"), (Route{Exchange: "", Key: "video"}); got != want {
		t.Errorf("ToQueue(video) = %+v, want %+v", got, want)
	}
}
