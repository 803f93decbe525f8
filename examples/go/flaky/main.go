// flaky, in Go: consumes `jobs`. A body containing "fail" asks to be
// retried, so after max_attempts it lands in the dead-letter topic; any
// other body is published to `jobs.done.go`.
package main

import (
	"bytes"
	"fmt"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	if bytes.Contains(m.Body, []byte("fail")) {
		wasq.Log(wasq.Info, fmt.Sprintf("job %s failed (attempt %d)", m.ID[:], m.Attempts))
		return wasq.Retry
	}
	if err := wasq.Publish("jobs.done.go", m.Body); err != nil {
		return wasq.Retry
	}
	return wasq.Success
}

func init() { wasq.Handle(handle) }

func main() {}
