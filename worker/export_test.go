package worker

import "github.com/warrenq/warren/internal/broker"

// Header sizing, for the external tests that build messages at the limits.
var (
	HeaderTableSize = broker.TableSize
	UserHeaderSize  = userHeaderSize
)
