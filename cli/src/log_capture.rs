//! The host's log lines about a plugin, kept for `wasq plugin test` to show
//! under the message that caused them (a guest's own `log` calls and
//! stdout, refused publishes, traps) instead of going to stderr.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Log lines since the last [`LogBuffer::take`].
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<Vec<String>>,
}

impl LogBuffer {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A `tracing` layer writing each event as one line into a [`LogBuffer`]:
/// `LEVEL message (field=value, …)`, without the plugin's name (there is
/// only one plugin).
pub struct CaptureLayer {
    pub buffer: Arc<LogBuffer>,
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let mut text = format!("{} {}", event.metadata().level(), line.message);
        if !line.fields.is_empty() {
            let _ = write!(text, " ({})", line.fields.join(", "));
        }
        if let Ok(mut lines) = self.buffer.lines.lock() {
            lines.push(text);
        }
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: Vec<String>,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "plugin" => {}
            name => self.fields.push(format!("{name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "plugin" => {}
            name => self.fields.push(format!("{name}={value}")),
        }
    }
}
