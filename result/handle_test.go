package result_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/warrenq/warren/outcome"
	"github.com/warrenq/warren/result"
)

// A result that arrived before the caller's context ended is returned, not
// the context's error: Get prefers a final state to a done context every
// time, where a plain select would pick one at random.
func TestGetPrefersADeliveredResultToADoneContext(t *testing.T) {
	decode := func(b []byte) (int, error) {
		var n int
		err := json.Unmarshal(b, &n)
		return n, err
	}
	ok := result.NewSubscription("ok")
	ok.Deliver(result.Update{ID: "ok", State: result.Success, Result: []byte(`42`)})
	failed := result.NewSubscription("failed")
	failed.Deliver(result.Update{ID: "failed", State: result.Failure, Kind: outcome.ReasonPermanent, Error: "no"})
	hOK, hFailed := result.NewHandle(ok, decode, nil), result.NewHandle(failed, decode, nil)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 1000 {
		if n, err := hOK.Get(done); err != nil || n != 42 {
			t.Fatalf("try %d: Get = %d, %v; want 42", i, n, err)
		}
		var te *result.TaskError
		if _, err := hFailed.Get(done); !errors.As(err, &te) {
			t.Fatalf("try %d: Get of a failed task = %v, want its *TaskError", i, err)
		}
	}
	// With nothing delivered, the context's error.
	pending := result.NewHandle(result.NewSubscription("pending"), decode, nil)
	if _, err := pending.Get(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with nothing delivered = %v, want context.Canceled", err)
	}
}
