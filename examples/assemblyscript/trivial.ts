// trivial, in AssemblyScript: finishes every message and does nothing
// else; the per-message cost of the AssemblyScript bindings (wasq-bench guests).
import { Message, Outcome, handle } from "../../guest-sdk/assemblyscript/wasq";
export { wasq_abi_version, wasq_alloc, wasq_handle, wasq_handle_batch } from "../../guest-sdk/assemblyscript/wasq";

handle((message: Message): i64 => Outcome.SUCCESS);
