// trivial in JavaScript: finishes every message and does nothing else. The
// benchmark's measure of what one call into a JavaScript plugin costs.
import { handleEach } from "../../guest-sdk/js/batch.js";
export function handle(_message) {}

// Many messages per call (world batch-consumer), each to `handle`.
export const handleBatch = handleEach(handle);
