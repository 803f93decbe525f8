// trivial, in Go: finishes every message and does nothing else; the
// per-message cost of the Go bindings (wasq-bench guests).
package main

import "wasq.dev/guest"

func handle(m *wasq.Message) wasq.Outcome { return wasq.Success }

func init() { wasq.Handle(handle) }

func main() {}
