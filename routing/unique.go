package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// UniquePrefix starts the names of unique tasks' lock queues.
const UniquePrefix = "warren.unique."

// HolderSuffix ends the name of a lock's holder queue, beside its lock
// queue.
const HolderSuffix = ".holder"

// maxUniqueTask bounds the task name's part of a lock queue's name, which
// must fit AMQP's 255 bytes with the hash and HolderSuffix.
const maxUniqueTask = 160

// UniqueQueue returns the name of the lock queue of the unique task
// taskName with key: warren.unique.<task>.<hash>, where the hash (128 bits
// of SHA-256 over task and key) keeps the name short and free of the key's
// characters. A task name over 160 bytes is cut; the hash still covers it
// whole.
func UniqueQueue(taskName, key string) string {
	h := sha256.New()
	h.Write([]byte(taskName))
	h.Write([]byte{0})
	h.Write([]byte(key))
	sum := h.Sum(nil)
	name := taskName
	if len(name) > maxUniqueTask {
		name = name[:maxUniqueTask]
	}
	return UniquePrefix + name + "." + hex.EncodeToString(sum[:16])
}

// HolderQueue returns the name of the holder queue beside lock, which
// keeps the id of the task that holds the lock: a lock queue cannot be
// read without opening it (docs/decisions.md, "Unique tasks").
func HolderQueue(lock string) string { return lock + HolderSuffix }

// UniqueTopology returns the two queues of the lock queue lock: the lock
// (at most one message; another publish is refused) and its holder queue
// (the newest message only). Both are classic and durable, and the broker
// deletes them once nobody has read or declared them for expires. They
// are declared KeepExisting, so that producers that give the same task
// different durations (and so expiries) share the queues that exist.
func UniqueTopology(lock string, expires time.Duration) Topology {
	ms := max(expires.Milliseconds(), 1)
	return Topology{Queues: []Queue{
		{Name: lock, NoDeadLetters: true, KeepExisting: true, Args: map[string]any{
			"x-max-length": int64(1), "x-overflow": "reject-publish", "x-expires": ms,
		}},
		{Name: HolderQueue(lock), NoDeadLetters: true, KeepExisting: true, Args: map[string]any{
			"x-max-length": int64(1), "x-overflow": "drop-head", "x-expires": ms,
		}},
	}}
}
