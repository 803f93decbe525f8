//! A channel's part of /stats, in nsqd's field names and order.

use std::sync::atomic::Ordering;
use std::time::Instant;

use hdrhistogram::Histogram;

use serde::Serialize;

use super::Channel;
use crate::broker::client::ClientStats;
use crate::broker::latency::LatencyStats;

impl Channel {
    pub fn stats(&self, include_clients: bool) -> ChannelStats {
        let (depth, backend_depth, in_flight_count, deferred_count, latency) = {
            let mut state = self.state.lock();
            (
                state.ready.len() + state.backing.depth() as usize,
                state.backing.depth(),
                state.in_flight.len(),
                state.deferred.len(),
                state
                    .latency
                    .as_mut()
                    .map(|window| window.stats(Instant::now()))
                    .unwrap_or_default(),
            )
        };
        let clients = self.clients.lock();
        let client_count = clients.len();
        let mut client_stats: Vec<ClientStats> = if include_clients {
            clients.values().map(|c| c.stats(None)).collect()
        } else {
            Vec::new()
        };
        drop(clients);
        client_stats.sort_by_key(|c| c.connect_ts);
        ChannelStats {
            channel_name: self.name.clone(),
            depth: depth as i64,
            backend_depth: backend_depth as i64,
            in_flight_count,
            deferred_count,
            message_count: self.message_count.load(Ordering::Relaxed),
            requeue_count: self.requeue_count.load(Ordering::Relaxed),
            timeout_count: self.timeout_count.load(Ordering::Relaxed),
            client_count,
            clients: client_stats,
            paused: self.is_paused(),
            e2e_processing_latency: latency,
        }
    }

    /// Adds this channel's latency window, if it keeps one, to `into` (a
    /// topic's merge).
    pub fn merge_latency(&self, into: &mut Histogram<u64>) {
        if let Some(window) = &mut self.state.lock().latency {
            window.merge_into(Instant::now(), into);
        }
    }
}

/// Field names and order as nsqd's `ChannelStats`.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStats {
    pub channel_name: String,
    pub depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: usize,
    pub deferred_count: usize,
    pub message_count: u64,
    pub requeue_count: u64,
    pub timeout_count: u64,
    pub client_count: usize,
    pub clients: Vec<ClientStats>,
    pub paused: bool,
    pub e2e_processing_latency: LatencyStats,
}
