// uppercase, in Go: consumes `words` and publishes each body uppercased
// (ASCII letters only, as the Rust example) to `words.upper.go`.
package main

import "wasq.dev/guest"

func handle(m *wasq.Message) wasq.Outcome {
	upper := make([]byte, len(m.Body))
	for i, c := range m.Body {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper[i] = c
	}
	if err := wasq.Publish("words.upper.go", upper); err != nil {
		wasq.Log(wasq.Warn, "cannot publish to words.upper.go: "+err.Error())
		return wasq.Retry
	}
	return wasq.Success
}

func init() { wasq.Handle(handle) }

func main() {}
