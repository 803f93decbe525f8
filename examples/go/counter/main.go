// counter, in Go: counts messages per key in the plugin's state. A
// message's body is the key (any bytes); the plugin adds 1 to the counter
// `count/<key>` and, each time the count reaches a multiple of `every`,
// publishes `<key> <count>` to `output`. A state error (or a failed
// publish) retries the message, which discards the increment: each message
// is counted once.
//
// plugins/counter.toml:
//
//	topic = "clicks"
//	publish = ["counts"]
//	state = true
//	[config]
//	every = "10"       # the default
//	output = "counts"  # the default
package main

import (
	"fmt"
	"strconv"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	every, err := strconv.ParseInt(config("every", "10"), 10, 64)
	if err != nil || every <= 0 {
		return failed(wasq.Retry, "config every = %q: not a positive decimal integer: retry", config("every", "10"))
	}
	key := append([]byte("count/"), m.Body...)
	count, err := wasq.StateIncrement(key, 1)
	if err != nil {
		return failed(wasq.Retry, "increment %q: %v: retry", key, err)
	}
	if count%every == 0 {
		output := config("output", "counts")
		body := strconv.AppendInt(append(append([]byte(nil), m.Body...), ' '), count, 10)
		if err := wasq.Publish(output, body); err != nil {
			return failed(wasq.Retry, "publish to %s: %v: retry", output, err)
		}
	}
	return wasq.Success
}

// config is the [config] value of key, or fallback when it is not set.
func config(key, fallback string) string {
	if value, ok := wasq.Config(key); ok {
		return value
	}
	return fallback
}

func failed(o wasq.Outcome, format string, args ...any) wasq.Outcome {
	wasq.Log(wasq.Warn, fmt.Sprintf(format, args...))
	return o
}

func init() { wasq.Handle(handle) }

func main() {}
