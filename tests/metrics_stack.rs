//! `StackBuilder::metrics` with and without a recorder installed when the stack is
//! built: with one, the stack's series are written; with none, the stack leaves its
//! metrics listeners out (so it costs what a stack without `.metrics()` does) and
//! says so in a warning.

#![cfg(all(feature = "metrics", feature = "stack"))]

use std::io::Write;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::observe::metrics::recorder_installed;
use tower_fortify::stack::Stack;

type Backend = tower::util::BoxCloneSyncService<u32, u32, BoxError>;

fn backend() -> Backend {
    tower::util::BoxCloneSyncService::new(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }))
}

/// Sends `n` requests with `recorder` as this thread's recorder (the test's
/// current-thread runtime polls every future on this thread).
async fn send<S>(stack: &mut S, recorder: &metrics_exporter_prometheus::PrometheusRecorder, n: u32)
where
    S: Service<u32, Response = u32, Error = BoxError>,
{
    let _local = metrics::set_default_local_recorder(recorder);
    for i in 0..n {
        let answer = stack.ready().await.unwrap().call(i).await.unwrap();
        assert_eq!(answer, i);
    }
}

/// Captures what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_stack_built_with_a_recorder_writes_its_series() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let mut stack = metrics::with_local_recorder(&recorder, || {
        assert!(recorder_installed());
        Stack::builder()
            .name("orders")
            .backend("a", backend())
            .metrics()
            .build()
            .unwrap()
    });
    send(&mut stack, &recorder, 5).await;
    let text = recorder.handle().render();
    assert!(
        text.contains(r#"fortify_requests_total{name="orders",outcome="success"} 5"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stack_built_without_a_recorder_leaves_its_metrics_out_and_warns() {
    assert!(
        !recorder_installed(),
        "this test binary installs no global recorder"
    );
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut stack = tracing::subscriber::with_default(subscriber, || {
        Stack::builder()
            .name("orders")
            .backend("a", backend())
            .metrics()
            .build()
            .unwrap()
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("WARN") && logs.contains("no `metrics` recorder is installed"),
        "{logs}"
    );
    assert!(logs.contains("stack=orders"), "{logs}");

    // A recorder installed after the build sees nothing from this stack.
    let recorder = PrometheusBuilder::new().build_recorder();
    send(&mut stack, &recorder, 5).await;
    let text = recorder.handle().render();
    assert!(!text.contains("fortify_requests_total"), "{text}");
}
