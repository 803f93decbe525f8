// window, in Go: sums readings over tumbling windows of `window_ms`. Each
// body is a reading, a decimal int64; the message's timestamp puts it in
// the window starting at start = t - t % window_ms (t in ms), and the
// plugin adds it to the state key `sum/<start>`. The first reading of a
// window also sets `timer/<start>` and publishes, deferred until the
// window ends, `tick <start>` to the plugin's own topic; when that tick
// comes back, the plugin publishes `<start> <sum>` to `output` and
// deletes both keys. A body that is not a number is dead-lettered; a
// state error (or a failed publish) retries the message, which discards
// its writes.
//
// plugins/window.toml (the topic is in `publish`, for the ticks):
//
//	topic = "readings"
//	publish = ["readings", "sums"]
//	state = true
//	[config]
//	window_ms = "10000"  # the default
//	output = "sums"      # the default
package main

import (
	"bytes"
	"fmt"
	"strconv"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	if start, ok := bytes.CutPrefix(m.Body, []byte("tick ")); ok {
		return tick(m, string(start))
	}
	reading, err := strconv.ParseInt(string(m.Body), 10, 64)
	if err != nil {
		return failed(wasq.Fatal, "message %s: not a decimal int64 reading: dead-letter", m.ID[:])
	}
	window, err := strconv.ParseInt(config("window_ms", "10000"), 10, 64)
	if err != nil || window <= 0 {
		return failed(wasq.Retry, "config window_ms = %q: not a positive decimal integer: retry",
			config("window_ms", "10000"))
	}
	t := m.Timestamp / 1_000_000
	start := t - t%window
	startText := strconv.FormatInt(start, 10)
	sum := []byte("sum/" + startText)
	if _, err := wasq.StateIncrement(sum, reading); err != nil {
		return failed(wasq.Retry, "increment %q: %v: retry", sum, err)
	}
	timer := []byte("timer/" + startText)
	_, set, err := wasq.StateGet(timer)
	if err != nil {
		return failed(wasq.Retry, "get %q: %v: retry", timer, err)
	}
	if !set { // the window's first reading: its tick comes when it ends
		if err := wasq.StateSet(timer, []byte("1")); err != nil {
			return failed(wasq.Retry, "set %q: %v: retry", timer, err)
		}
		delay := max(0, start+window-t)
		if err := wasq.PublishDeferred(m.Topic, []byte("tick "+startText), delay); err != nil {
			return failed(wasq.Retry, "publish to %s in %d ms: %v: retry", m.Topic, delay, err)
		}
	}
	return wasq.Success
}

// tick ends the window that starts at start: its sum, if any, is
// published and forgotten, and so is its timer.
func tick(m *wasq.Message, start string) wasq.Outcome {
	if _, err := strconv.ParseInt(start, 10, 64); err != nil {
		return failed(wasq.Fatal, "message %s: a tick without a decimal start: dead-letter", m.ID[:])
	}
	sumKey := []byte("sum/" + start)
	sum, ok, err := wasq.StateGet(sumKey)
	if err != nil {
		return failed(wasq.Retry, "get %q: %v: retry", sumKey, err)
	}
	if ok {
		output := config("output", "sums")
		if err := wasq.Publish(output, append([]byte(start+" "), sum...)); err != nil {
			return failed(wasq.Retry, "publish to %s: %v: retry", output, err)
		}
		if _, err := wasq.StateDelete(sumKey); err != nil {
			return failed(wasq.Retry, "delete %q: %v: retry", sumKey, err)
		}
	}
	timer := []byte("timer/" + start)
	if _, err := wasq.StateDelete(timer); err != nil {
		return failed(wasq.Retry, "delete %q: %v: retry", timer, err)
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
