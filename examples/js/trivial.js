// trivial in JavaScript: finishes every message and does nothing else. The
// benchmark's measure of what one call into a JavaScript plugin costs.
export function handle(_message) {}
