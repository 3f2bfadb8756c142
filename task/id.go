package task

import (
	"time"

	"github.com/google/uuid"
)

// NewID returns a new task id: a version 7 UUID (RFC 9562) that carries t,
// the enqueue time, to 256 ns: 48 bits of Unix milliseconds, the version,
// 12 bits of the millisecond's fraction, the variant, 62 random bits. Ids
// sort by enqueue time, and a worker reads the enqueue time from the id
// rather than from a header: RabbitMQ decodes every message's header table
// on publish, and one more header costs it several percent of its publish
// rate.
//
// t must be after 1970, as the format's clock is; time.Now always is.
func NewID(t time.Time) string {
	u := uuid.New() // version 4: random, with the variant set
	ms := t.UnixMilli()
	frac := int64(t.Nanosecond()%int(time.Millisecond)) >> 8 // < 3907: fits 12 bits
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | byte(frac>>8)&0x0f
	u[7] = byte(frac)
	return u.String()
}

// IDTime returns the time a version 7 UUID carries: to 256 ns for an id from
// NewID, to the millisecond for one from another generator (which may fill
// the sub-millisecond bits with a counter or at random). ok is false for
// any other id.
func IDTime(id string) (t time.Time, ok bool) {
	// Only the canonical form (8-4-4-4-12 hex digits) is a task id;
	// uuid.Parse also takes the urn: and braced forms, which are longer.
	if len(id) != 36 {
		return time.Time{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return time.Time{}, false
	}
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	t = time.UnixMilli(ms)
	if frac := int64(u[6]&0x0f)<<8 | int64(u[7]); frac<<8 < int64(time.Millisecond) {
		t = t.Add(time.Duration(frac << 8))
	}
	return t, true
}

// idCarriesTime reports whether id carries enqueued precisely enough to
// stand for it: within a millisecond of it, and in the same whole second,
// which the AMQP timestamp that travels with it checks (see enqueuedAt).
func idCarriesTime(id string, enqueued time.Time) bool {
	t, ok := IDTime(id)
	if !ok {
		return false
	}
	d := t.Sub(enqueued)
	return d > -time.Millisecond && d < time.Millisecond && t.Unix() == enqueued.Unix()
}

// enqueuedAt is a message's enqueue time: the x-warren-enqueued-at header
// if it has one (us > 0), else its id's time when that falls in the second
// of its AMQP timestamp (so that a stale id, minted long before the
// publish, cannot pass for the enqueue time), else the timestamp itself;
// zero if none.
func enqueuedAt(us int64, id string, timestamp time.Time) time.Time {
	if us > 0 {
		return time.UnixMicro(us)
	}
	if timestamp.IsZero() {
		return time.Time{}
	}
	if t, ok := IDTime(id); ok && t.Unix() == timestamp.Unix() {
		return t
	}
	return timestamp
}
