//! The message as the host lays it out (ABI.md, "The message layout").

/// One message of the plugin's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The 16-byte message id.
    pub id: &'a [u8; 16],
    /// 1 on first delivery, +1 on each redelivery.
    pub attempts: u16,
    /// Nanoseconds since the Unix epoch, when it was published.
    pub timestamp: i64,
    pub topic: &'a str,
    pub channel: &'a str,
    pub body: &'a [u8],
}

const V1_HEADER: usize = 48;

impl<'a> Message<'a> {
    /// Reads a message from the host's layout; `None` if it is malformed.
    pub fn decode(bytes: &'a [u8]) -> Option<Message<'a>> {
        let u32_at =
            |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize);
        let header = u32_at(0)?;
        if header < V1_HEADER {
            return None;
        }
        let attempts = u16::from_le_bytes(bytes.get(4..6)?.try_into().ok()?);
        let timestamp = i64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        let id: &[u8; 16] = bytes.get(16..32)?.try_into().ok()?;
        let (topic_len, channel_len, body_len) = (u32_at(32)?, u32_at(36)?, u32_at(40)?);
        let topic_end = header.checked_add(topic_len)?;
        let channel_end = topic_end.checked_add(channel_len)?;
        let body_end = channel_end.checked_add(body_len)?;
        Some(Message {
            id,
            attempts,
            timestamp,
            topic: std::str::from_utf8(bytes.get(header..topic_end)?).ok()?,
            channel: std::str::from_utf8(bytes.get(topic_end..channel_end)?).ok()?,
            body: bytes.get(channel_end..body_end)?,
        })
    }

    /// The id as text (Wasq's ids are hex digits).
    pub fn id_str(&self) -> &'a str {
        std::str::from_utf8(self.id).unwrap_or("<binary id>")
    }

    /// Writes the host's layout; used by tests of handlers and of this crate.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(V1_HEADER + self.topic.len() + self.channel.len() + self.body.len());
        out.extend_from_slice(&(V1_HEADER as u32).to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(self.id);
        for len in [self.topic.len(), self.channel.len(), self.body.len(), 0] {
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(self.channel.as_bytes());
        out.extend_from_slice(self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let message = Message {
            id: b"0123456789abcdef",
            attempts: 3,
            timestamp: 1_700_000_000_000_000_000,
            topic: "words",
            channel: "upper",
            body: b"hello",
        };
        let bytes = message.encode();
        assert_eq!(Message::decode(&bytes), Some(message));
        assert_eq!(Message::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Message::decode(&bytes[..10]), None);
    }
}
