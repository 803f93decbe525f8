// enrich, in Go: each message is a JSON object with a string "id"; the
// plugin GETs `<api_url>/<id>` and publishes
// {"message": <the message>, "enriched": <the answer>} to `publish_topic`.
// A 2xx answer is published and the message finished; 404 dead-letters
// it; other statuses and failed requests are handled as in webhook (429
// and 5xx retry, after `retry-after` when given; a timeout or a failed
// connection retries; the rest dead-letters).
//
// plugins/enrich.toml:
//
//	topic = "orders"
//	publish = ["enriched"]
//	allowed_outbound_hosts = ["https://api.example.com"]
//	required_config = ["api_url"]
//	[config]
//	api_url = "https://api.example.com/customers"
//	publish_topic = "enriched"  # the default
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	var message struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(m.Body, &message); err != nil || message.ID == "" {
		return failed(wasq.Fatal, "message %s: not a JSON object with a string \"id\": dead-letter", m.ID[:])
	}
	apiURL, _ := wasq.Config("api_url")
	request := "GET " + strings.TrimSuffix(apiURL, "/") + "/" + url.PathEscape(message.ID)
	response, err := wasq.HTTPRequest("GET", request[4:], nil, nil)
	if err != nil || response.StatusCode/100 != 2 {
		return outcome(request, response, err)
	}
	enriched, err := json.Marshal(struct {
		Message  json.RawMessage `json:"message"`
		Enriched json.RawMessage `json:"enriched"`
	}{m.Body, response.Body})
	if err != nil {
		return failed(wasq.Retry, "%s: the answer is not JSON: retry", request)
	}
	topic, ok := wasq.Config("publish_topic")
	if !ok {
		topic = "enriched"
	}
	if err := wasq.Publish(topic, enriched); errors.Is(err, wasq.ErrUnavailable) {
		return failed(wasq.Retry, "publish to %s: %v: retry", topic, err)
	} else if err != nil {
		return failed(wasq.Fatal, "publish to %s: %v: dead-letter", topic, err)
	}
	return wasq.Success
}

// outcome is what becomes of the message after a request that did not
// succeed; it is logged.
func outcome(request string, response *wasq.Response, err error) wasq.Outcome {
	var status *wasq.StatusError
	switch {
	case errors.As(err, &status) && status.Temporary():
		return failed(wasq.Retry, "%s: %v: retry", request, err)
	case err != nil:
		return failed(wasq.Fatal, "%s: %v: dead-letter", request, err)
	case response.StatusCode != 429 && response.StatusCode/100 != 5:
		return failed(wasq.Fatal, "%s: HTTP %d: dead-letter", request, response.StatusCode)
	}
	if delayMs, ok := response.RetryAfter(); ok {
		return failed(wasq.RetryAfter(delayMs), "%s: HTTP %d: retry in %d ms", request, response.StatusCode, delayMs)
	}
	return failed(wasq.Retry, "%s: HTTP %d: retry", request, response.StatusCode)
}

func failed(o wasq.Outcome, format string, args ...any) wasq.Outcome {
	wasq.Log(wasq.Warn, fmt.Sprintf(format, args...))
	return o
}

func init() { wasq.Handle(handle) }

func main() {}
