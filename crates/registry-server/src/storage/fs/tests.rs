//! Unit tests of the filesystem backend.

use super::*;
use crate::storage::Storage;
use futures_util::TryStreamExt;

/// A stored blob of `len` patterned bytes.
fn stored(len: usize) -> (tempfile::TempDir, FsStorage, Digest, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let st = FsStorage::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let d = Digest::of("sha256", &data);
    std::fs::write(st.blob_path(&d), &data).unwrap();
    (dir, st, d, data)
}

#[tokio::test]
async fn blob_stream_reads_any_range_in_chunks() {
    let (_dir, st, d, data) = stored(2 * READ_CHUNK + 12345);
    let len = data.len() as u64;
    let chunk = READ_CHUNK as u64;
    for (start, count) in [
        (0, len),
        (1, chunk),
        (chunk - 7, chunk + 14),
        (2 * chunk, len - 2 * chunk),
        (len - 1, 1),
    ] {
        let s = Storage::blob_stream(&st, &d, start, count).await.unwrap();
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(
            chunks.len() as u64,
            count.div_ceil(chunk),
            "{start}+{count}"
        );
        assert!(chunks.iter().all(|c| c.len() <= READ_CHUNK));
        let got: Vec<u8> = chunks.concat();
        assert_eq!(
            got,
            data[start as usize..(start + count) as usize],
            "{start}+{count}"
        );
    }
}

#[tokio::test]
async fn blob_stream_of_a_truncated_file_fails() {
    let (_dir, st, d, data) = stored(READ_CHUNK + 10);
    let s = Storage::blob_stream(&st, &d, 0, data.len() as u64 + 5)
        .await
        .unwrap();
    let e = s.try_collect::<Vec<Bytes>>().await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(e.to_string().contains("5 bytes early"), "{e}");
}

#[tokio::test]
async fn blob_stream_of_a_missing_blob_fails() {
    let (_dir, st, _, _) = stored(1);
    let other = Digest::of("sha256", b"other");
    assert!(Storage::blob_stream(&st, &other, 0, 1).await.is_err());
}
