//! Responses of nsqlookupd's protocol V1: `[size u32][data]`, big-endian,
//! with no frame type (`OK`, IDENTIFY's JSON, or `E_CODE description`).
//! Requests are lines, and IDENTIFY carries a length-prefixed body as in
//! protocol V2 ([`crate::command::with_body`]).

use std::io::{self, Read};

/// Appends one response to `out`.
pub fn write_response(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Reads one response from a blocking reader.
pub fn read_response(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size)?;
    let mut data = vec![0u8; u32::from_be_bytes(size) as usize];
    reader.read_exact(&mut data)?;
    Ok(data)
}

/// Reads one response of at most `max_size` bytes from an async reader.
#[cfg(feature = "tokio")]
pub async fn read_response_async(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    max_size: u32,
) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let size = reader.read_u32().await?;
    if size > max_size {
        return Err(crate::frame::invalid_data(
            crate::WireError::FrameTooLarge {
                size,
                limit: max_size,
            },
        ));
    }
    let size = size as usize;
    let mut data = vec![0u8; size];
    reader.read_exact(&mut data).await?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_round_trip() {
        let mut out = Vec::new();
        write_response(&mut out, b"OK");
        assert_eq!(out, [0, 0, 0, 2, b'O', b'K']);
        assert_eq!(read_response(&mut out.as_slice()).unwrap(), b"OK");
    }
}
