package worker

// Header sizing, for the external tests that build messages at the limits.
var (
	HeaderTableSize = headerTableSize
	UserHeaderSize  = userHeaderSize
)
