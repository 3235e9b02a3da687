//! The worker pipe protocol: `[u32 header_len][u32 body_len][header JSON][body]`, big
//! endian. The body is the call's JSON data or the app's JSON result, passed through
//! untouched; only the small header is parsed.

use std::io;

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Frames larger than this are refused (a worker cannot flood the runner's memory).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

pub async fn write_frame<W, H>(w: &mut W, header: &H, body: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    H: Serialize,
{
    let h = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(8 + h.len() + body.len());
    buf.extend_from_slice(&(h.len() as u32).to_be_bytes());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

pub async fn read_frame<R, H>(r: &mut R) -> io::Result<(H, Vec<u8>)>
where
    R: AsyncRead + Unpin,
    H: DeserializeOwned,
{
    read_frame_within(r, MAX_FRAME).await
}

/// [`read_frame`] refusing frames over `max` bytes: a worker's hello, read before the
/// connection is known to be a worker's, is small.
pub async fn read_frame_within<R, H>(r: &mut R, max: usize) -> io::Result<(H, Vec<u8>)>
where
    R: AsyncRead + Unpin,
    H: DeserializeOwned,
{
    let mut lens = [0u8; 8];
    r.read_exact(&mut lens).await?;
    let hlen = u32::from_be_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
    let blen = u32::from_be_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
    if hlen + blen > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frame of {} bytes exceeds the {max}-byte limit",
                hlen + blen
            ),
        ));
    }
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h).await?;
    let mut body = vec![0u8; blen];
    r.read_exact(&mut body).await?;
    let header =
        serde_json::from_slice(&h).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_with_raw_body() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, &serde_json::json!({"id": 7}), br#"{"x":1}"#)
            .await
            .unwrap();
        let (h, body): (serde_json::Value, _) = read_frame(&mut b).await.unwrap();
        assert_eq!(h["id"], 7);
        assert_eq!(body, br#"{"x":1}"#);
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_allocating() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut lens = Vec::new();
        lens.extend_from_slice(&(MAX_FRAME as u32).to_be_bytes());
        lens.extend_from_slice(&1u32.to_be_bytes());
        a.write_all(&lens).await.unwrap();
        let err = read_frame::<_, serde_json::Value>(&mut b)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A hello has a far smaller limit.
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut lens = Vec::new();
        lens.extend_from_slice(&4000u32.to_be_bytes());
        lens.extend_from_slice(&200u32.to_be_bytes());
        a.write_all(&lens).await.unwrap();
        let err = read_frame_within::<_, serde_json::Value>(&mut b, 4096)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
