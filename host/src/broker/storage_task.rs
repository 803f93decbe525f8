//! The storage task: every `--sync-timeout` it fsyncs the disk queues that
//! have unsynced writes and saves their read checkpoints (nsqd's
//! `--sync-timeout`), and it saves `wasqd.dat` soon after topics, channels
//! or pause states change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Broker;

/// Changes arriving this close together are saved once.
const METADATA_DEBOUNCE: Duration = Duration::from_millis(50);

pub fn spawn(broker: Arc<Broker>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = broker.options.sync_timeout.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => broker.sync_queues().await,
                _ = broker.metadata_changed() => {
                    tokio::time::sleep(METADATA_DEBOUNCE).await;
                    if let Err(e) = broker.save_metadata().await {
                        tracing::error!(error = %e, "STORAGE: cannot save the metadata");
                    }
                }
            }
        }
    })
}
