//! Live reload: build the `payments` stack from a configuration file, serve calls,
//! and when the file changes, reconfigure the running stack: print what changed, or
//! why the new file was refused (the old settings then keep running).
//!
//! ```text
//! cargo run --example reload --features config -- [FILE] [SECONDS]
//! ```
//!
//! FILE defaults to `examples/fortify.toml`; edit it while this runs (change
//! `stacks.payments.bulkhead.max_concurrent`, a backend's `weight`, or break a value
//! on purpose). SECONDS bounds the run (default: until Ctrl-C).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tower::{Service, ServiceExt, service_fn};
use tower_fortify::BoxError;
use tower_fortify::config::FortifyConfig;

/// When the file was last modified (`None` if it cannot be read now).
fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let path =
        PathBuf::from(args.next().unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fortify.toml").into()
        }));
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;

    let config = FortifyConfig::from_path(&path)?;
    let settings = config.stack("payments")?;
    // In-process backends stand in for the file's URLs: each answers with its id.
    let mut stack = settings
        .builder(|backend| {
            let id = backend.id.clone();
            service_fn(move |req: String| {
                let id = id.clone();
                async move { Ok::<_, BoxError>(format!("{id} answered {req}")) }
            })
        })?
        .build()?;
    println!("watching {} (stack `payments`)", path.display());
    println!(
        "{}",
        stack
            .effective_config()
            .expect("built from settings")
            .to_toml()
    );

    let mut seen = modified(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let started = tokio::time::Instant::now();
    let mut served = 0u64;
    loop {
        tick.tick().await;
        if seconds.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
            break;
        }
        // Some traffic each second.
        for i in 0..10 {
            match stack.ready().await?.call(format!("request {i}")).await {
                Ok(_) => served += 1,
                Err(e) => println!("refused: {e}"),
            }
        }
        let now = modified(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let result = FortifyConfig::from_path(&path)
            .map_err(Into::into)
            .and_then(|config| stack.reconfigure_from(&config));
        match result {
            Ok(done) if done.changes.is_empty() => println!("reloaded: nothing changed"),
            Ok(done) => {
                println!("reloaded, {} change(s):", done.changes.len());
                for change in &done.changes {
                    println!("  {change}");
                }
            }
            Err(e) => println!("reload refused, the old settings keep running: {e}"),
        }
        println!(
            "served {served}; bulkhead limit {}, deadline {:?}",
            stack.bulkhead().limit(),
            stack.deadline()
        );
    }
    println!("served {served} calls");
    Ok(())
}
