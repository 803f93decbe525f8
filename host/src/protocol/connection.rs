//! One TCP client speaking protocol V2, served by one task.
//!
//! The task owns the socket, a read buffer and an output buffer. Each turn
//! of its loop runs every complete command in the read buffer, sends as
//! many messages as the client's RDY allows, writes everything buffered in
//! one go, then waits for the next event: bytes from the client, messages
//! on its channel, capacity coming back (a timeout) or a heartbeat tick.
//! Writes are thus batched under load and sent at once when idle.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::authorize::{AuthCheck, Gate};
use super::command::{Command, Limits, Parser, Verb};
use super::error::ClientError;
use super::identify::Upgrade;
use super::transport::Transport;
use crate::auth::AuthState;
use crate::broker::Broker;
use crate::broker::channel::Channel;
use crate::broker::client::{Client, ClientState};
use crate::broker::message::MessageId;
use crate::broker::topic::PublishError;
use crate::broker::topic::Topic;
use crate::quick_client::{QUICK_SPIN, SpinPolicy, give_way};
use crate::security::Security;
use wasq_storage::PendingSync;
use wasq_wire::frame::{self, FrameType};

/// Messages taken from the channel per batch; bounds the output buffer.
const DELIVERY_BATCH: usize = 128;

/// nsqd's default output buffer size.
pub const DEFAULT_OUTPUT_BUFFER_SIZE: usize = 16 * 1024;

pub struct Connection {
    pub(super) broker: Arc<Broker>,
    pub(super) client: Arc<Client>,
    pub(super) security: Arc<Security>,
    pub(super) transport: Transport,
    pub(super) read_buf: BytesMut,
    out: Vec<u8>,
    parser: Parser,
    /// `None` when the client disabled heartbeats.
    pub(super) heartbeat_interval: Option<Duration>,
    pub(super) msg_timeout: Duration,
    pub(super) output_buffer_size: usize,
    pub(super) output_buffer_timeout: Duration,
    pub(super) sample_rate: i32,
    pub(super) subscription: Option<(Arc<Topic>, Arc<Channel>)>,
    last_read: Instant,
    /// Whether to spin for the client's next bytes before sleeping.
    spin: SpinPolicy,
    /// Responses already in `out` that may be sent only after their
    /// publish is synced (durable mode). All of a turn's publishes share
    /// one wait, so pipelined PUBs share fsyncs.
    awaiting_sync: Vec<AwaitingSync>,
    /// A sync failed: the error went out instead of the OK, then we close.
    sync_failure: Option<ClientError>,
    /// The secret the client sent with AUTH, kept to ask again when its
    /// authorization expires.
    pub(super) auth_secret: Option<String>,
    pub(super) auth_state: Option<AuthState>,
    /// FINs read but not yet done: done together (see `finish_pending`).
    pub(super) pending_fins: Vec<MessageId>,
}

/// Work a command leaves for the connection to do asynchronously, before
/// it reads on: the rest of the buffer may depend on it.
pub(super) enum Suspend {
    /// IDENTIFY negotiated TLS or compression; its response is already in
    /// the output buffer and must go out before the upgrade.
    Upgrade(Upgrade),
    /// AUTH: ask the auth servers about this secret.
    Authenticate(String),
    /// The authorization expired and the next command needs it.
    Reauthorize,
}

/// An OK in the output buffer that waits for its publish's fsync.
struct AwaitingSync {
    pending: PendingSync,
    /// Where the OK starts in `out`.
    response_at: usize,
    command: &'static str,
    topic: String,
}

/// Why the loop ended, for the log.
enum Ending {
    ClientClosed,
    Fatal(ClientError),
    Kicked,
    Shutdown,
    MissedHeartbeats,
    Io(std::io::Error),
}

impl Connection {
    pub fn new(
        broker: Arc<Broker>,
        security: Arc<Security>,
        stream: TcpStream,
        remote: String,
    ) -> Connection {
        let options = &broker.options;
        let client = broker.connect_client(remote);
        let limits = Limits::from_options(options);
        let heartbeat_interval = Some(options.client_timeout / 2);
        let msg_timeout = options.msg_timeout;
        let output_buffer_timeout = options.output_buffer_timeout;
        Connection {
            broker,
            client,
            security,
            transport: Transport::new(stream),
            read_buf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(DEFAULT_OUTPUT_BUFFER_SIZE),
            parser: Parser::new(limits),
            heartbeat_interval,
            msg_timeout,
            output_buffer_size: DEFAULT_OUTPUT_BUFFER_SIZE,
            output_buffer_timeout,
            sample_rate: 0,
            subscription: None,
            last_read: Instant::now(),
            spin: SpinPolicy::default(),
            awaiting_sync: Vec::new(),
            sync_failure: None,
            auth_secret: None,
            auth_state: None,
            pending_fins: Vec::new(),
        }
    }

    /// Serves the client until it leaves, then cleans up after it.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let remote = self.client.remote_address.clone();
        tracing::info!(client = %remote, "TCP: new client (V2)");
        let ending = self.io_loop(&shutdown).await;
        match &ending {
            Ending::ClientClosed | Ending::Shutdown => {}
            Ending::Fatal(e) => {
                tracing::warn!(client = %remote, error = %e, "closing client after fatal error")
            }
            Ending::Kicked => {
                tracing::info!(client = %remote, "closing client: its channel was deleted")
            }
            Ending::MissedHeartbeats => {
                tracing::warn!(client = %remote, "closing client: missed heartbeats")
            }
            Ending::Io(e) => {
                tracing::info!(client = %remote, error = %e, "closing client after I/O error")
            }
        }
        self.client.state.set(ClientState::Disconnected);
        if let Some((topic, channel)) = self.subscription.take() {
            self.broker.unsubscribe(&topic, &channel, self.client.id);
        }
        self.broker.disconnect_client(self.client.id);
        self.transport.shutdown().await;
        tracing::info!(client = %remote, "TCP: client exited");
    }

    async fn io_loop(&mut self, shutdown: &CancellationToken) -> Ending {
        let mut heartbeat = self.heartbeat_timer();
        let mut heartbeat_period = self.heartbeat_interval;
        loop {
            match self.run_buffered_commands() {
                Ok(None) => {}
                Ok(Some(suspend)) => {
                    if let Err(e) = self.flush().await {
                        return Ending::Io(e);
                    }
                    if let Err(e) = self.resume(suspend).await {
                        self.send_error(&e);
                        let _ = self.flush().await;
                        return Ending::Fatal(e);
                    }
                    continue;
                }
                Err(ending) => {
                    let _ = self.flush().await;
                    return ending;
                }
            }
            if heartbeat_period != self.heartbeat_interval {
                heartbeat = self.heartbeat_timer();
                heartbeat_period = self.heartbeat_interval;
            }
            if self.client.is_kicked() {
                let _ = self.flush().await;
                return Ending::Kicked;
            }

            // Register for "messages ready" before taking, so a message put
            // between our take and our wait still wakes us.
            let channel = self.subscription.as_ref().map(|(_, c)| c.clone());
            let messages_ready = channel.as_deref().map(Channel::messages_ready);
            let wait_for_messages = match &channel {
                Some(channel) => match self.deliver(channel).await {
                    Ok(drained) => drained,
                    Err(e) => return Ending::Io(e),
                },
                None => false,
            };
            if let Err(e) = self.flush().await {
                return Ending::Io(e);
            }
            if let Some(e) = self.sync_failure.take() {
                return Ending::Fatal(e);
            }

            let messages_ready = async {
                match messages_ready {
                    Some(ready) if wait_for_messages => ready.await,
                    _ => std::future::pending().await,
                }
            };
            // Only a connection that publishes spins: a subscriber also
            // waits for messages and timeouts, which a spin would delay.
            let waiting_since = Instant::now();
            let spun = self.subscription.is_none() && self.spin.should_spin();
            if spun && let Some(read) = self.read_if_quick().await {
                match read {
                    Ok(0) => return Ending::ClientClosed,
                    Ok(_) => self.read_at(waiting_since, spun),
                    Err(e) => return Ending::Io(e),
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ending::Shutdown,
                read = self.transport.read(&mut self.read_buf) => match read {
                    Ok(0) => return Ending::ClientClosed,
                    Ok(_) => self.read_at(waiting_since, spun),
                    Err(e) => return Ending::Io(e),
                },
                _ = self.client.wake.notified() => {}
                _ = messages_ready => {}
                _ = tick(&mut heartbeat) => {
                    let interval = self.heartbeat_interval.unwrap_or(Duration::MAX);
                    if self.last_read.elapsed() > interval.saturating_mul(2) {
                        return Ending::MissedHeartbeats;
                    }
                    frame::write_frame(&mut self.out, FrameType::Response, frame::HEARTBEAT);
                }
            }
        }
    }

    /// Bytes came after waiting since `waiting_since` (spinning first or not).
    fn read_at(&mut self, waiting_since: Instant, spun: bool) {
        self.last_read = Instant::now();
        self.spin.record(spun, self.last_read - waiting_since);
    }

    /// Looks for the client's next bytes for up to [`QUICK_SPIN`] before
    /// the connection sleeps (why: crate::quick_client); `None` if none came.
    /// Each look yields first, so other tasks run and the runtime polls
    /// its sockets (without blocking) in between.
    async fn read_if_quick(&mut self) -> Option<std::io::Result<usize>> {
        let since = Instant::now();
        let until = since + QUICK_SPIN;
        loop {
            give_way(since.elapsed());
            tokio::task::yield_now().await;
            let read = std::pin::pin!(self.transport.read(&mut self.read_buf));
            let mut look = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(read) = read.poll(&mut look) {
                return Some(read);
            }
            if Instant::now() >= until {
                return None;
            }
        }
    }

    fn heartbeat_timer(&self) -> Option<tokio::time::Interval> {
        self.heartbeat_interval.map(|every| {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        })
    }

    /// Runs every complete command in the read buffer, stopping early at
    /// one that leaves asynchronous work ([`Suspend`]).
    fn run_buffered_commands(&mut self) -> Result<Option<Suspend>, Ending> {
        loop {
            if self.must_reauthorize() {
                self.finish_pending();
                return Ok(Some(Suspend::Reauthorize));
            }
            let gate = Gate {
                tls_missing: self.tls_missing(),
                auth: AuthCheck {
                    enabled: self.security.auth_enabled(),
                    state: self.auth_state.as_ref(),
                },
            };
            let command = match self.parser.parse(&mut self.read_buf, &gate) {
                Ok(Some(command)) => command,
                Ok(None) => {
                    self.finish_pending();
                    return Ok(None);
                }
                Err(e) => {
                    self.finish_pending();
                    self.send_error(&e);
                    return Err(Ending::Fatal(e));
                }
            };
            if !matches!(command, Command::Line(Verb::Fin, _)) {
                self.finish_pending();
            }
            match self.execute(command) {
                Ok(None) => {}
                Ok(Some(suspend)) => return Ok(Some(suspend)),
                Err(e) => {
                    self.refuse(&e);
                    if e.fatal {
                        return Err(Ending::Fatal(e));
                    }
                }
            }
        }
    }

    /// Does what a command left, then lets the loop read on.
    async fn resume(&mut self, suspend: Suspend) -> Result<(), ClientError> {
        match suspend {
            Suspend::Upgrade(upgrade) => self.upgrade(upgrade).await,
            Suspend::Authenticate(secret) => self.authenticate(secret).await,
            Suspend::Reauthorize => self.reauthorize().await,
        }
    }

    fn execute(&mut self, command: Command) -> Result<Option<Suspend>, ClientError> {
        tracing::debug!(client = %self.client.remote_address, command = command.name(), "PROTOCOL(V2)");
        let no_suspend = |result: Result<(), ClientError>| result.map(|()| None);
        no_suspend(match command {
            Command::Identify(body) => return self.identify(&body),
            Command::Auth(body) => return self.auth(&body),
            Command::Pub { topic, body } => self.publish("PUB", &topic, [body], 0),
            Command::Mpub { topic, bodies } => self.publish("MPUB", &topic, bodies.iter(), 0),
            Command::Dpub {
                topic,
                defer_ms,
                body,
            } => self.publish("DPUB", &topic, [body], defer_ms),
            Command::Line(verb, params) => match verb {
                Verb::Sub => self.subscribe(&params),
                Verb::Rdy => self.ready(&params),
                Verb::Fin => self.finish(&params),
                Verb::Req => self.requeue(&params),
                Verb::Touch => self.touch(&params),
                Verb::Cls => self.start_close(),
                Verb::Nop => Ok(()),
            },
        })
    }

    /// Sends as many messages as RDY allows. Returns true when the channel
    /// ran dry with capacity left (so the caller should wait for messages).
    async fn deliver(&mut self, channel: &Arc<Channel>) -> std::io::Result<bool> {
        if self.client.state.get() != ClientState::Subscribed {
            return Ok(false);
        }
        loop {
            let capacity = self.client.ready_count.load(Ordering::Acquire)
                - self.client.in_flight.load(Ordering::Acquire);
            if capacity <= 0 {
                return Ok(false);
            }
            let want = (capacity as usize).min(DELIVERY_BATCH);
            let messages = channel.take(&self.client, want, self.msg_timeout, self.sample_rate);
            for message in &messages {
                frame::write_message(&mut self.out, message);
            }
            if self.out.len() >= self.output_buffer_size {
                self.flush().await?;
            }
            if messages.len() < want {
                return Ok(true);
            }
        }
    }

    pub(super) fn respond(&mut self, data: &[u8]) {
        frame::write_frame(&mut self.out, FrameType::Response, data);
    }

    /// Queues a response that goes out only once `pending` is synced.
    pub(super) fn respond_after_sync(
        &mut self,
        data: &[u8],
        pending: PendingSync,
        command: &'static str,
        topic: &str,
    ) {
        if !pending.is_empty() {
            self.awaiting_sync.push(AwaitingSync {
                pending,
                response_at: self.out.len(),
                command,
                topic: topic.to_string(),
            });
        }
        self.respond(data);
    }

    /// Waits for the syncs the buffered responses depend on. If one fails,
    /// everything from its OK on is replaced by the error, and the
    /// connection closes after sending it.
    async fn wait_for_syncs(&mut self) {
        for awaiting in std::mem::take(&mut self.awaiting_sync) {
            if let Err(e) = awaiting.pending.wait().await {
                let error = super::publish::publish_failed(
                    awaiting.command,
                    &awaiting.topic,
                    &PublishError::Storage(e),
                );
                self.out.truncate(awaiting.response_at);
                self.send_error(&error);
                self.sync_failure = Some(error);
                self.awaiting_sync.clear();
                return;
            }
        }
    }

    /// Answers a command with its error; a recoverable one is also logged
    /// (a fatal one is logged when the connection closes).
    pub(super) fn refuse(&mut self, error: &ClientError) {
        self.send_error(error);
        if !error.fatal {
            tracing::debug!(client = %self.client.remote_address, error = %error, "recoverable client error");
        }
    }

    fn send_error(&mut self, error: &ClientError) {
        frame::write_frame(
            &mut self.out,
            FrameType::Error,
            error.to_string().as_bytes(),
        );
    }

    /// Writes the output buffer; a client that does not read for a whole
    /// heartbeat interval (or client timeout) is given up on.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.wait_for_syncs().await;
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self
            .heartbeat_interval
            .unwrap_or(self.broker.options.client_timeout);
        let written = tokio::time::timeout(limit, self.transport.write_all(&self.out)).await;
        self.out.clear();
        if self.out.capacity() > 4 * self.output_buffer_size.max(DEFAULT_OUTPUT_BUFFER_SIZE) {
            self.out
                .shrink_to(self.output_buffer_size.max(DEFAULT_OUTPUT_BUFFER_SIZE));
        }
        match written {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
    }

    pub(super) fn state(&self) -> ClientState {
        self.client.state.get()
    }

    pub(super) fn set_state(&self, new_state: ClientState) {
        self.client.state.set(new_state);
    }
}

async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}
