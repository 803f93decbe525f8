//! Group commit: every plugin worker's commits go through one thread,
//! which takes whatever has queued up while its last commit (and fsync)
//! ran and applies it all as one batch with one fsync. A worker waits for
//! its commit without holding a thread (the reply is a oneshot), so a
//! thousand workers waiting for one fsync cost one fsync.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::limits::StateError;
use super::store::{Commit, Committed, StateStore};

/// Commits taken into one group at most (each a message's writes).
const MAX_GROUP: usize = 20_000;

type Reply = oneshot::Sender<Result<Vec<Committed>, StateError>>;

/// The handle workers send their commits through.
#[derive(Debug, Clone)]
pub struct StateCommitter {
    requests: mpsc::Sender<(Vec<Commit>, Reply)>,
}

impl StateCommitter {
    /// Starts the commit thread of `store`; it ends when every handle is
    /// dropped.
    pub fn start(store: Arc<StateStore>) -> std::io::Result<StateCommitter> {
        let (requests, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("state-commit".into())
            .spawn(move || commit_loop(&store, &queue))?;
        Ok(StateCommitter { requests })
    }

    /// Commits one worker's messages (in order) and says what became of
    /// each, once it is as durable as the store promises.
    pub async fn commit(&self, commits: Vec<Commit>) -> Result<Vec<Committed>, StateError> {
        if commits.is_empty() {
            return Ok(Vec::new());
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
    while let Ok(first) = queue.recv() {
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
        match store.commit(&group) {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for (size, reply) in sizes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, commits = group.len(), "STATE: commit failed; the messages are retried");
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
