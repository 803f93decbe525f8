//! `handle-batch` (WIT 1.3.0, the `batch-consumer` worlds): many messages
//! in one call into a component, as ABI v1's `wasq_handle_batch` hands them
//! to a core module. The guest reports each message's outcome through
//! `batch.done` as soon as it knows it, so each message still gets its own
//! deadline (the call's deadline moves on at every `done`), its own state
//! writes (a state operation belongs to the message under way, and a
//! failure's writes are dropped at its `done`), and a trap or a deadline
//! costs only the message under way: those before it keep their outcomes,
//! those after it go to a fresh instance.

use wasmtime::Store;
use wasmtime::component::{Func, TypedFunc};

use super::abi::{self, Outcome};
use super::component::{
    ComponentInstance, ComponentState, Failure, borrow_message, outcome_of, wit,
};
use super::instance::{GuestError, classify, push_single};
use crate::broker::message::{Message, MessageId};

/// The outcomes of a `handle-batch` call under way.
#[derive(Debug)]
pub struct BatchOutcomes {
    /// The batch's message ids, in order.
    ids: Vec<MessageId>,
    outcomes: Vec<Outcome>,
}

impl BatchOutcomes {
    /// The message under way: the first without an outcome (the last one
    /// once all have theirs).
    pub fn under_way(&self) -> usize {
        self.outcomes.len().min(self.ids.len().saturating_sub(1))
    }
}

impl ComponentState {
    /// `batch.done`: the outcome of the message under way. Called outside
    /// a `handle-batch` call, or more often than the batch has messages,
    /// it is a trap (an ABI error: the instance is replaced).
    pub(super) fn batch_done(&mut self, result: Result<(), Failure>) -> Result<(), String> {
        let Some(batch) = &mut self.batch else {
            return Err("batch.done called outside handle-batch".into());
        };
        let index = batch.outcomes.len();
        let Some(id) = batch.ids.get(index) else {
            return Err(format!(
                "batch.done called more often than the batch has messages ({})",
                batch.ids.len()
            ));
        };
        let outcome = outcome_of(&self.link, &id.0, result);
        batch.outcomes.push(outcome);
        if outcome != Outcome::Success {
            // Undone before the next message can read them.
            self.state.discard(index);
        }
        // The next message's deadline starts now.
        self.egress.call_deadline = self.link.call_deadline_from_now();
        Ok(())
    }
}

/// The `handle-batch` export, type-checked against the WIT.
pub(super) fn batch_typed<'a>(
    func: Func,
    store: &Store<ComponentState>,
) -> Result<TypedFunc<(&'a [wit::Message<'a>],), ()>, GuestError> {
    func.typed(store).map_err(|error| {
        GuestError::Abi(format!(
            "export `handle-batch` must be `func(messages: list<message>)`: {error:#}"
        ))
    })
}

impl ComponentInstance {
    /// Hands the guest the first of `messages`, or as many as one batch
    /// holds (about 64 KiB, as for core modules) if it exports
    /// `handle-batch`, and pushes one outcome per message handled, in
    /// order, at least one. False if the instance failed and must be
    /// replaced (see [`super::instance::GuestInstance::handle_many`]).
    pub async fn handle_many(
        &mut self,
        messages: &[Message],
        topic: &str,
        channel: &str,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) -> bool {
        let count = match self.handle_batch {
            Some(_) => abi::batch_extent(messages, topic, channel).0,
            None => 1,
        };
        if count <= 1 {
            let result = self.handle(&messages[0], topic, channel).await;
            return push_single(results, result);
        }
        self.call_batch(&messages[..count], topic, channel, results)
            .await
    }

    async fn call_batch(
        &mut self,
        batch: &[Message],
        topic: &str,
        channel: &str,
        results: &mut Vec<Result<Outcome, GuestError>>,
    ) -> bool {
        let func = self.handle_batch.expect("only called with handle-batch");
        let typed = match batch_typed(func, &self.store) {
            Ok(typed) => typed,
            Err(error) => {
                results.push(Err(error));
                return false;
            }
        };
        let borrowed: Vec<wit::Message<'_>> = batch
            .iter()
            .map(|message| borrow_message(message, topic, channel))
            .collect();
        self.start_call();
        self.store.data_mut().batch = Some(BatchOutcomes {
            ids: batch.iter().map(|message| message.id).collect(),
            outcomes: Vec::with_capacity(batch.len()),
        });
        let called = typed
            .call_async(&mut self.store, (&borrowed,))
            .await
            .map_err(classify);
        let outcomes = self.store.data_mut().batch.take().expect("set above");
        let reported = outcomes.outcomes.len();
        results.extend(outcomes.outcomes.into_iter().map(Ok));
        if reported < batch.len() {
            let failure = called.err().unwrap_or_else(|| {
                GuestError::Abi(format!(
                    "handle-batch returned without an outcome for message {reported} of {}",
                    batch.len()
                ))
            });
            // The message under way failed; those after it were not
            // handled: the next instance gets them.
            results.push(Err(failure));
            return false;
        }
        let name = &self.store.data().link.name;
        if let Err(error) = called {
            // Every message has its outcome, but the instance is not to be trusted.
            tracing::warn!(plugin = %name, %error, "PLUGIN: handle-batch failed after its last outcome; instance replaced");
            return false;
        }
        true
    }
}
