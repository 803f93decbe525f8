// dedup, in Go: drops repeated messages. Each body is a JSON object with
// an "id" (a string, or a number: its text as written). The first message
// with an id is published unchanged to `output`, and the plugin remembers
// when (the message's timestamp, in ms, in the state key `seen/<id>`);
// another message with that id less than `ttl_ms` later is finished
// without being published. A body without an id is dead-lettered; a state
// error (or a failed publish) retries the message.
//
// plugins/dedup.toml:
//
//	topic = "events"
//	publish = ["unique"]
//	state = true
//	[config]
//	ttl_ms = "60000"   # the default
//	output = "unique"  # the default
package main

import (
	"encoding/json"
	"fmt"
	"strconv"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	id, ok := messageID(m.Body)
	if !ok {
		return failed(wasq.Fatal, "message %s: not a JSON object with a string or number \"id\": dead-letter", m.ID[:])
	}
	ttl, err := strconv.ParseInt(config("ttl_ms", "60000"), 10, 64)
	if err != nil {
		return failed(wasq.Retry, "config ttl_ms = %q: not a decimal integer: retry", config("ttl_ms", "60000"))
	}
	now := m.Timestamp / 1_000_000
	key := []byte("seen/" + id)
	seen, ok, err := wasq.StateGet(key)
	if err != nil {
		return failed(wasq.Retry, "get %q: %v: retry", key, err)
	}
	if ok {
		if t, err := strconv.ParseInt(string(seen), 10, 64); err == nil && now-t < ttl {
			return wasq.Success // a repeat
		}
	}
	if err := wasq.StateSet(key, strconv.AppendInt(nil, now, 10)); err != nil {
		return failed(wasq.Retry, "set %q: %v: retry", key, err)
	}
	output := config("output", "unique")
	if err := wasq.Publish(output, m.Body); err != nil {
		return failed(wasq.Retry, "publish to %s: %v: retry", output, err)
	}
	return wasq.Success
}

// messageID is the "id" of the JSON object body: a string's value, or a
// number's text as written ("7", "1.5e3"); false if there is none.
func messageID(body []byte) (string, bool) {
	var fields map[string]json.RawMessage // not a struct: its field names match in any case ("ID")
	if err := json.Unmarshal(body, &fields); err != nil || len(fields["id"]) == 0 {
		return "", false
	}
	raw := fields["id"]
	switch c := raw[0]; {
	case c == '"':
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", false
		}
		return id, true
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), true
	}
	return "", false // null, true, false, an object or an array
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
