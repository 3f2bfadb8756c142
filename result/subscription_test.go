package result

import (
	"errors"
	"testing"

	"github.com/warrenq/warren/outcome"
)

func TestSubscriptionTransitions(t *testing.T) {
	s := NewSubscription("t1")
	if s.State() != Pending {
		t.Fatalf("new subscription is %s", s.State())
	}
	for _, st := range []State{Started, Retry, Started} {
		if s.Deliver(Update{State: st}) {
			t.Fatalf("%s reported as final", st)
		}
		if s.State() != st {
			t.Errorf("state %s after delivering %s", s.State(), st)
		}
	}
	if !s.Deliver(Update{State: Success, Result: []byte(`1`)}) {
		t.Fatal("SUCCESS not final")
	}
	// A late notice (a redelivered run) must not undo the final state.
	s.Deliver(Update{State: Started})
	s.Lose(ErrLost)
	u, err := s.outcome()
	if s.State() != Success || err != nil || string(u.Result) != "1" {
		t.Errorf("after late updates: state %s, err %v, result %s", s.State(), err, u.Result)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after the final state")
	}
}

func TestSubscriptionLost(t *testing.T) {
	s := NewSubscription("t2")
	s.Deliver(Update{State: Started})
	s.Lose(ErrLost)
	s.Deliver(Update{State: Success}) // too late: already lost
	if _, err := s.outcome(); !errors.Is(err, ErrLost) {
		t.Errorf("err = %v, want ErrLost", err)
	}
}

func TestDecodeUpdate(t *testing.T) {
	u, err := DecodeUpdate([]byte(`{"id":"x","state":"FAILURE","kind":"exhausted","error":"boom","retries":4}`))
	if err != nil || u.State != Failure || u.Kind != outcome.ReasonExhausted || u.Retries != 4 {
		t.Errorf("DecodeUpdate = %+v, %v", u, err)
	}
	for _, bad := range []string{``, `{}`, `not json`, `{"state":5}`} {
		if _, err := DecodeUpdate([]byte(bad)); err == nil {
			t.Errorf("DecodeUpdate(%q) accepted", bad)
		}
	}
}

func TestTaskErrorText(t *testing.T) {
	for _, tc := range []struct {
		e    TaskError
		want string
	}{
		{TaskError{ID: "t1", Kind: outcome.ReasonPermanent, Message: "no card"}, "task t1 failed (permanent): no card"},
		{TaskError{ID: "t2", Kind: outcome.ReasonExhausted, Message: "db down", Retries: 4}, "task t2 failed (exhausted): db down"},
		{TaskError{ID: "t3", Kind: outcome.ReasonUnknownTask}, "task t3 failed (unknown_task)"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}
