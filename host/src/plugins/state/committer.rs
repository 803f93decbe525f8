//! Group commit: every plugin worker's commits go through one thread,
//! which takes whatever has queued up while its last commit (and fsync)
//! ran and applies it all as one batch with one fsync. A worker waits for
//! its commit without holding a thread (the reply is a oneshot), so a
//! thousand workers waiting for one fsync cost one fsync. In the default
//! mode there is no fsync to share, and a worker commits on its own thread.
//! Between groups, the thread applies the store's log when it is due
//! (store.rs), so no worker waits for that.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::commit::{Commit, Committed};
use super::limits::StateError;
use super::store::{APPLY_CHECK, StateStore};

/// Commits taken into one group at most (each a handler call's writes).
const MAX_GROUP: usize = 1_000;

type Reply = oneshot::Sender<Result<Vec<Committed>, StateError>>;

/// The handle workers send their commits through.
#[derive(Debug, Clone)]
pub struct StateCommitter {
    requests: mpsc::Sender<(Vec<Commit>, Reply)>,
    /// The store, where commits are made on the worker's own thread: in
    /// the default mode, where there is no fsync for a group to share.
    inline: Option<Arc<StateStore>>,
}

impl StateCommitter {
    /// Starts the commit thread of `store`; it ends when every handle is
    /// dropped.
    pub fn start(store: Arc<StateStore>) -> std::io::Result<StateCommitter> {
        let (requests, queue) = mpsc::channel();
        let inline = (!store.durable()).then(|| store.clone());
        std::thread::Builder::new()
            .name("state-commit".into())
            .spawn(move || commit_loop(&store, &queue))?;
        Ok(StateCommitter { requests, inline })
    }

    /// A handle with no thread behind it (unit tests commit directly).
    #[cfg(test)]
    pub fn detached() -> StateCommitter {
        StateCommitter {
            requests: mpsc::channel().0,
            inline: None,
        }
    }

    /// Commits one worker's calls (in order) and says what became of
    /// each, once it is as durable as the store promises.
    pub async fn commit(&self, commits: Vec<Commit>) -> Result<Vec<Committed>, StateError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(store) = &self.inline {
            return store.commit(commits);
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((commits, reply))
            .map_err(|_| StateError::Io("the state store is closed".into()))?;
        answer
            .await
            .map_err(|_| StateError::Io("the state store is closed".into()))?
    }
}

fn commit_loop(store: &StateStore, queue: &mpsc::Receiver<(Vec<Commit>, Reply)>) {
    loop {
        let first = match queue.recv_timeout(APPLY_CHECK) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                store.apply_if_due();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut requests = vec![first];
        let mut queued = requests[0].0.len();
        while queued < MAX_GROUP {
            match queue.try_recv() {
                Ok(request) => {
                    queued += request.0.len();
                    requests.push(request);
                }
                Err(_) => break,
            }
        }
        let mut sizes = Vec::with_capacity(requests.len());
        let mut group = Vec::with_capacity(queued);
        let mut replies = Vec::with_capacity(requests.len());
        for (commits, reply) in requests {
            sizes.push(commits.len());
            group.extend(commits);
            replies.push(reply);
        }
        let commits = group.len();
        match store.commit(group) {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, commits, "STATE: commit failed; the messages are retried");
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        store.apply_if_due();
    }
}
