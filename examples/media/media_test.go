package media_test

import (
	"context"
	"testing"

	"github.com/warrenq/warren/examples/media"
	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/warrentest"
)

// What the example's handler makes of each payload: a made-up file
// succeeds, a missing name is retried, a negative size is dead at once.
func TestProcessVerdicts(t *testing.T) {
	h := media.ProcessMedia.Handler(media.Process)
	for _, c := range []struct {
		m      media.Media
		want   outcome.Outcome
		reason outcome.Reason
	}{
		{media.Media{Name: "/tmp/lolcat1.avi", Size: 1301013}, outcome.Success, ""},
		{media.Media{Size: 1}, outcome.Retry, ""},
		{media.Media{Name: "/tmp/lolcat-corrupt.avi", Size: -1}, outcome.Dead, outcome.ReasonPermanent},
	} {
		v := warrentest.Work(context.Background(), t, h, media.ProcessMedia.New(c.m))
		if v.Outcome != c.want || v.Reason != c.reason {
			t.Errorf("%+v: %v, want %s %s", c.m, v, c.want, c.reason)
		}
	}
}
