// {{name}}: consumes `{{name}}` and publishes each body, its ASCII letters
// uppercased, to `{{name}}.upper`.
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
	if err := wasq.Publish("{{name}}.upper", upper); err != nil {
		wasq.Log(wasq.Warn, "cannot publish to {{name}}.upper: "+err.Error())
		return wasq.Retry
	}
	return wasq.Success
}

func init() { wasq.Handle(handle) }

func main() {}
