//go:build !warren_plainconn

package broker

// coalesceWrites wraps each connection's socket in a coalescingConn. The
// build tag warren_plainconn turns it off, for the write path's A/B in
// docs/decisions.md.
const coalesceWrites = true
