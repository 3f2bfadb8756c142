//go:build warren_directwrite

package broker

// directWrite is set: callers of Publish write their own messages.
const directWrite = true
