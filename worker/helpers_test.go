package worker_test

// Job is the payload of the test tasks.
type Job struct {
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}
