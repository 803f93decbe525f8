// webhook, in Go: nsq_to_http as a plugin. POSTs each message's body to
// the URL in config `url`. A 2xx answer finishes the message; 429 or 5xx
// retries it (after `retry-after` seconds when the server says so); any
// other status (3xx not followed, other 4xx) dead-letters it. A timeout or
// a failed connection retries; a URL not allowed, a bad request or a too
// large answer dead-letters. Each failure is a warning in the log.
//
// plugins/webhook.toml:
//
//	topic = "events"
//	allowed_outbound_hosts = ["https://hooks.example.com"]
//	required_config = ["url"]
//	[config]
//	url = "https://hooks.example.com/events"
//	authorization = "Bearer ${WEBHOOK_TOKEN}"  # optional: the Authorization header
//	content_type = "application/json"          # default application/octet-stream
package main

import (
	"errors"
	"fmt"

	"wasq.dev/guest"
)

func handle(m *wasq.Message) wasq.Outcome {
	url, _ := wasq.Config("url")
	header := wasq.Header{}
	header.Set("Content-Type", "application/octet-stream")
	if contentType, ok := wasq.Config("content_type"); ok {
		header.Set("Content-Type", contentType)
	}
	if authorization, ok := wasq.Config("authorization"); ok {
		header.Set("Authorization", authorization)
	}
	response, err := wasq.HTTPRequest("POST", url, header, m.Body)
	return outcome("POST "+url, response, err)
}

// outcome is what becomes of the message after a request; a failure is
// logged.
func outcome(request string, response *wasq.Response, err error) wasq.Outcome {
	var status *wasq.StatusError
	switch {
	case errors.As(err, &status) && status.Temporary():
		return failed(wasq.Retry, "%s: %v: retry", request, err)
	case err != nil:
		return failed(wasq.Fatal, "%s: %v: dead-letter", request, err)
	case response.StatusCode/100 == 2:
		return wasq.Success
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
