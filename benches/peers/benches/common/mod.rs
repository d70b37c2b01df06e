//! Helpers shared by the criterion suites: a bare service, a synchronous driver and a
//! multi-thread contention harness.

#![allow(dead_code)]
// Benchmarks measure wall time: the ban on std::time::Instant is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tower::{Service, ServiceExt};

/// The cheapest possible service: answers at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare;

impl Service<u64> for Bare {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, req: u64) -> Self::Future {
        std::future::ready(Ok(req.wrapping_add(1)))
    }
}

/// Always fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Failing;

impl Service<u64> for Failing {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;
    #[inline]
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    #[inline]
    fn call(&mut self, _: u64) -> Self::Future {
        std::future::ready(Err(std::io::Error::other("down")))
    }
}

/// `poll_ready` then `call`, polled to completion with a no-op waker.
#[inline]
pub fn drive<S: Service<u64>>(svc: &mut S, req: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => break,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => std::hint::spin_loop(),
        }
    }
    let mut fut = pin!(svc.call(req));
    loop {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
        std::hint::spin_loop();
    }
}

/// Runs `tasks` tasks on a multi-thread runtime with `workers` workers, each sending
/// `calls` requests through its own clone of `svc`; returns the wall time.
pub fn contention<S>(svc: S, workers: usize, tasks: usize, calls: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + std::fmt::Debug,
    S::Response: Send,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for t in 0..tasks {
            let mut svc = svc.clone();
            set.spawn(async move {
                for i in 0..calls {
                    let r = svc.ready().await.unwrap().call(i ^ t as u64).await;
                    std::hint::black_box(r.is_ok());
                }
            });
        }
        while set.join_next().await.is_some() {}
        start.elapsed()
    })
}
