//! `ReplayBody` on its own: copies, the cap, trailers, failures, size hints.
#![cfg(feature = "http")]

use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use proptest::prelude::*;
use tower_fortify::http::{ReplayBody, ReplayError};

type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;
type Streamed =
    StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

fn body(frames: Frames) -> Streamed {
    StreamBody::new(futures::stream::iter(frames))
}

fn data(chunks: &[&'static str]) -> Frames {
    chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect()
}

async fn collect<B: Body<Data = Bytes> + Unpin>(
    b: B,
) -> Result<(Bytes, Option<HeaderMap>), B::Error> {
    let collected = b.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

#[tokio::test]
async fn copies_replay_data_and_trailers() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let mut frames = data(&["he", "llo"]);
    frames.push(Ok(Frame::trailers(trailers.clone())));
    let first = ReplayBody::new(body(frames), 100);
    let second = first.try_clone().unwrap();
    let (bytes, t) = collect(first).await.unwrap();
    assert_eq!(bytes, "hello");
    assert_eq!(t.as_ref(), Some(&trailers));
    let third = second.try_clone().unwrap();
    let (bytes, t) = collect(second).await.unwrap();
    assert_eq!(bytes, "hello");
    assert_eq!(t.as_ref(), Some(&trailers));
    assert!(third.is_end_stream() || collect(third).await.unwrap().0 == "hello");
}

#[tokio::test]
async fn a_copy_can_start_while_the_first_is_half_read() {
    let mut first = ReplayBody::new(body(data(&["a", "b", "c"])), 100);
    let f = first.frame().await.unwrap().unwrap();
    assert_eq!(f.into_data().unwrap(), "a");
    // The copy replays "a" and then reads on from the wrapped body.
    let second = first.try_clone().unwrap();
    let (bytes, _) = collect(second).await.unwrap();
    assert_eq!(bytes, "abc");
    // The first copy, now behind, replays the rest from the record.
    let (rest, _) = collect(first).await.unwrap();
    assert_eq!(rest, "bc");
}

#[tokio::test]
async fn past_the_cap_the_body_is_one_shot() {
    let mut first = ReplayBody::new(body(data(&["abc", "def", "g"])), 5);
    let lagging = first.try_clone().unwrap();
    assert!(first.is_replayable());
    assert_eq!(
        first.frame().await.unwrap().unwrap().into_data().unwrap(),
        "abc"
    );
    assert_eq!(first.buffered(), 3);
    assert_eq!(
        first.frame().await.unwrap().unwrap().into_data().unwrap(),
        "def"
    );
    assert!(first.is_capped());
    assert!(!first.is_replayable());
    assert_eq!(first.buffered(), 0, "the record is dropped at the cap");
    assert!(first.try_clone().is_none());
    // The front copy streams on.
    assert_eq!(
        first.frame().await.unwrap().unwrap().into_data().unwrap(),
        "g"
    );
    assert!(first.frame().await.is_none());
    // A copy that fell behind fails with a ReplayError.
    let err = collect(lagging).await.unwrap_err();
    let err = err.downcast_ref::<ReplayError>().unwrap();
    assert!(err.is_capped());
}

#[tokio::test]
async fn a_failed_stream_is_not_replayable() {
    let mut frames = data(&["a"]);
    frames.push(Err(std::io::Error::other("reset")));
    let first = ReplayBody::new(body(frames), 100);
    let copy = first.try_clone().unwrap();
    assert!(collect(first).await.is_err());
    // The copy replays what was read, then reports the failure.
    let err = collect(copy).await.unwrap_err();
    assert!(!err.downcast_ref::<ReplayError>().unwrap().is_capped());
}

#[test]
fn size_hints_follow_each_copy() {
    let b = ReplayBody::new(String::from("hello"), 10);
    assert_eq!(b.size_hint().exact(), Some(5));
    let empty = ReplayBody::new(String::new(), 10);
    assert!(empty.is_end_stream());
    assert!(empty.try_clone().unwrap().is_end_stream());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the chunks and the cap: the first copy always gets the whole body,
    /// and a copy made at the start gets it too exactly when it fit under the cap.
    #[test]
    fn replay_matches_the_original(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..8),
        cap in 0usize..64,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let total: usize = chunks.iter().map(Vec::len).sum();
            let expected: Vec<u8> = chunks.concat();
            let frames: Frames = chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))).collect();
            let first = ReplayBody::new(body(frames), cap);
            let copy = first.try_clone().unwrap();
            let (bytes, _) = collect(first).await.unwrap();
            prop_assert_eq!(&bytes[..], &expected[..]);
            let replayed = collect(copy).await;
            if total <= cap {
                prop_assert_eq!(&replayed.unwrap().0[..], &expected[..]);
            } else {
                prop_assert!(replayed.is_err());
            }
            Ok(())
        })?;
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<ReplayBody<Pin<Box<dyn Body<Data = Bytes, Error = std::io::Error> + Send + Sync>>>>();
}

#[tokio::test(start_paused = true)]
async fn two_copies_waiting_at_once_are_both_woken() {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, std::io::Error>>();
    let first = ReplayBody::new(StreamBody::new(rx), 100);
    let second = first.try_clone().unwrap();
    let a = tokio::spawn(collect(first));
    let b = tokio::spawn(collect(second));
    // Let both copies poll the empty channel and wait.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b"late"))))
        .unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tx.unbounded_send(Ok(Frame::data(Bytes::from_static(b" data"))))
        .unwrap();
    drop(tx);
    // A copy that missed its wake-up would hang: the timeout (paused time) says so.
    let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        (a.await.unwrap().unwrap().0, b.await.unwrap().unwrap().0)
    })
    .await
    .expect("both copies finish");
    assert_eq!(a, "late data");
    assert_eq!(b, "late data");
}
