//go:build !warren_directwrite

package broker

// directWrite, when set, has each caller of Publish write its own message
// on the channel, as amqp091-go is designed to be used, instead of handing
// it to the channel's writer goroutine. The build tag warren_directwrite
// sets it, for the write path's A/B in docs/decisions.md.
const directWrite = false
