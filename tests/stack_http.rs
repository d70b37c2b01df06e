//! The one-call HTTP stack over real sockets on 127.0.0.1: `Stack::http(urls)` with
//! its defaults routes around a failing backend and a killed one, retries only what
//! may be sent twice, and rejects a bad URL naming the field. Every loop is bounded.

#![cfg(feature = "http-client")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tower_fortify::stack::Stack;

/// An HTTP/1.1 server on 127.0.0.1 answering every request with `status`. Aborting
/// its task closes the listener and every connection, like a killed process.
struct Server {
    url: String,
    hits: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(status: StatusCode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            let service =
                hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"hi")))
                                .unwrap(),
                        )
                    }
                });
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { url, hits, task }
}

fn get() -> Request<Full<Bytes>> {
    Request::get("/orders?id=7").body(Full::default()).unwrap()
}

/// One backend answers 503: with nothing configured, every request succeeds on the
/// other, and the failing one's breaker takes it out after a few calls.
#[tokio::test]
async fn a_failing_backend_is_routed_around() {
    let (bad, good) = (
        serve(StatusCode::SERVICE_UNAVAILABLE).await,
        serve(StatusCode::OK).await,
    );
    let mut stack = Stack::http([&bad.url, &good.url]).unwrap().build().unwrap();
    for _ in 0..40 {
        let response = stack.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        bad.hits.load(Ordering::SeqCst) <= 10,
        "{} calls to the failing backend",
        bad.hits.load(Ordering::SeqCst)
    );
    assert!(good.hits.load(Ordering::SeqCst) >= 40);
    assert_eq!(stack.router().backends().len(), 2);
}

/// A backend killed mid-run (listener and connections gone): no request is lost.
#[tokio::test]
async fn a_killed_backend_loses_no_request() {
    let (a, b) = (serve(StatusCode::OK).await, serve(StatusCode::OK).await);
    let mut stack = Stack::http([&a.url, &b.url]).unwrap().build().unwrap();
    for i in 0..60 {
        if i == 20 {
            a.task.abort();
        }
        let response = stack.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
    }
    assert!(b.hits.load(Ordering::SeqCst) >= 40);
}

/// A POST that got a 503 is not sent again (it may have done its work); a GET is.
#[tokio::test]
async fn only_what_may_be_sent_twice_is_retried() {
    let bad = serve(StatusCode::SERVICE_UNAVAILABLE).await;
    let mut stack = Stack::http([&bad.url]).unwrap().build().unwrap();
    let post = Request::post("/pay")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let response = stack.ready().await.unwrap().call(post).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(bad.hits.load(Ordering::SeqCst), 1);
    let response = stack.ready().await.unwrap().call(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(bad.hits.load(Ordering::SeqCst) >= 3, "the GET was retried");
}

#[test]
fn a_bad_url_is_rejected_naming_the_field() {
    for url in ["10.0.0.1:8080", "ftp://10.0.0.1", "not a url", "/relative"] {
        let err = Stack::<
            tower_fortify::http::Upstream<tower_fortify::stack::HttpClient<Full<Bytes>>>,
        >::http([url])
        .unwrap_err();
        assert_eq!(err.field(), "http.upstream.url", "{url}");
        assert!(err.to_string().contains(url), "{err}");
    }
}
