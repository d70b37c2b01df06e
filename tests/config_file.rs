//! Configuration files: every error path names the file, the line and the field;
//! the README's example file parses; a built stack prints its configuration back.

#![cfg(feature = "config")]

use std::path::PathBuf;
use std::time::Duration;

use tower::service_fn;
use tower_fortify::BoxError;
use tower_fortify::config::{FileError, Format, FortifyConfig, StackSettings};

/// A file written under the target's temp dir, named `name`.
fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fortify-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(name: &str, text: &str) -> FileError {
    let path = write(name, text);
    FortifyConfig::from_path(&path).unwrap_err()
}

/// The message with the temp dir taken off the file name.
fn msg(e: &FileError) -> String {
    let text = e.to_string();
    let file = e.file().expect("names the file");
    let base = std::path::Path::new(file)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    text.replacen(file, base, 1)
}

const GOOD: &str = r#"
[defaults.breaker]
failure_rate = 0.5

[stacks.payments.breaker]
open_duration = "2s"

[[stacks.payments.backends]]
id = "eu-1"
"#;

#[test]
fn a_good_file_gives_its_stack() {
    let path = write("good.toml", GOOD);
    let config = FortifyConfig::from_path(&path).unwrap();
    let s = config.stack("payments").unwrap();
    let breaker = s.config.breaker.as_ref().unwrap();
    assert_eq!(breaker.failure_rate, Some(0.5), "from the defaults");
    assert_eq!(
        breaker.open_duration,
        Some(Duration::from_secs(2)),
        "the override"
    );
    assert_eq!(config.stack_names().collect::<Vec<_>>(), ["payments"]);
    let defaults = config.defaults().breaker.as_ref().unwrap();
    assert_eq!(defaults.failure_rate, Some(0.5));
    let own = config
        .stack_config("payments")
        .unwrap()
        .breaker
        .as_ref()
        .unwrap();
    assert_eq!(own.failure_rate, None, "as read: the override sets none");
}

#[test]
fn out_of_range_value_names_file_line_column_and_path() {
    let e = load_err(
        "range.toml",
        r#"[stacks.payments.breaker]
failure_rate = 1.5

[[stacks.payments.backends]]
id = "eu-1"
"#,
    );
    assert_eq!(
        msg(&e),
        "range.toml:2:16: stacks.payments.breaker.failure_rate: must lie in 0..=1 (got 1.5)"
    );
    assert_eq!((e.line(), e.column()), (Some(2), Some(16)));
    assert_eq!(e.path(), "stacks.payments.breaker.failure_rate");
}

#[test]
fn a_bad_default_is_reported_where_the_default_is() {
    let e = load_err(
        "default.toml",
        r#"[defaults.retry]
max_attempts = 0

[[stacks.payments.backends]]
id = "eu-1"
"#,
    );
    assert_eq!(
        msg(&e),
        "default.toml:2:16: defaults.retry.max_attempts: must be at least 1 (1 means a single attempt, no retry)"
    );
}

#[test]
fn unknown_field_is_refused() {
    let e = load_err(
        "unknown.toml",
        r#"[stacks.payments.breaker]
failur_rate = 0.5
"#,
    );
    let m = msg(&e);
    assert!(
        m.starts_with("unknown.toml:2:1: stacks.payments.breaker.failur_rate: unknown field `failur_rate`, expected one of"),
        "{m}"
    );
}

#[test]
fn unknown_top_level_table_is_refused() {
    let e = load_err("top.toml", "[stack.payments]\nx = 1\n");
    let m = msg(&e);
    assert!(
        m.starts_with("top.toml:1:2: stack: unknown field `stack`"),
        "{m}"
    );
}

#[test]
fn bad_duration_says_how_to_write_one() {
    let e = load_err(
        "duration.toml",
        r#"[stacks.payments.timeouts]
deadline = "5 seconds"
"#,
    );
    assert_eq!(
        msg(&e),
        "duration.toml:2:12: stacks.payments.timeouts.deadline: invalid duration \"5 seconds\": unknown unit (expected ns, us, ms, s, m, h) (write it as \"250ms\", \"2s\", \"1m\")"
    );
}

#[test]
fn a_duration_without_unit_is_refused() {
    let e = load_err(
        "unit.toml",
        "[defaults.bulkhead]\nmax_concurrent = 10\nmax_queued = 5\nmax_wait = \"250\"\n",
    );
    assert!(
        msg(&e).starts_with(
            "unit.toml:4:12: defaults.bulkhead.max_wait: invalid duration \"250\": missing unit"
        ),
        "{}",
        msg(&e)
    );
}

#[test]
fn wrong_type_is_refused() {
    let e = load_err(
        "type.toml",
        "[stacks.payments.bulkhead]\nmax_concurrent = \"many\"\n",
    );
    assert_eq!(
        msg(&e),
        "type.toml:2:18: stacks.payments.bulkhead.max_concurrent: invalid type: string \"many\", expected usize"
    );
}

#[test]
fn missing_required_field_is_named() {
    let e = load_err(
        "missing.toml",
        "[[stacks.payments.backends]]\nurl = \"http://10.0.0.1:80\"\n",
    );
    let m = msg(&e);
    assert!(
        m.starts_with("missing.toml:1:1: stacks.payments.backends[0].id: missing field `id`"),
        "{m}"
    );
}

#[test]
fn a_stack_without_backends_is_refused() {
    let e = load_err("empty.toml", "[stacks.payments.retry]\nmax_attempts = 2\n");
    assert_eq!(
        msg(&e),
        "empty.toml:1:9: stacks.payments.backends: needs at least one backend"
    );
}

#[test]
fn duplicate_backend_and_zero_weight_are_named_by_index() {
    let e = load_err(
        "dup.toml",
        "[[stacks.p.backends]]\nid = \"a\"\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "dup.toml:4:6: stacks.p.backends[1].id: duplicate backend id `a`"
    );
    let e = load_err(
        "weight.toml",
        "[[stacks.p.backends]]\nid = \"a\"\nweight = 0\n",
    );
    assert_eq!(
        msg(&e),
        "weight.toml:3:10: stacks.p.backends[0].weight: must be at least 1"
    );
}

#[cfg(feature = "http")]
#[test]
fn a_bad_url_is_named() {
    let e = load_err(
        "url.toml",
        "[[stacks.p.backends]]\nid = \"a\"\nurl = \"ftp://x\"\n",
    );
    let m = msg(&e);
    assert!(
        m.starts_with("url.toml:3:7: stacks.p.backends[0].url: "),
        "{m}"
    );
}

#[test]
fn settings_that_exclude_each_other_are_refused() {
    let e = load_err(
        "both.toml",
        "[stacks.p.breaker]\nopen_duration = \"1s\"\nopen_backoff = { base = \"1s\" }\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "both.toml:3:16: stacks.p.breaker.open_backoff: set open_duration or open_backoff, not both"
    );
    let e = load_err(
        "queue.toml",
        "[stacks.p.bulkhead]\nmax_queued = 3\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "queue.toml:1:1: stacks.p.bulkhead.max_wait: missing: a queue needs max_queued and max_wait"
    );
}

#[test]
fn a_nested_builder_error_points_into_the_nested_table() {
    let e = load_err(
        "backoff.toml",
        "[stacks.p.retry.backoff]\nbase = \"1s\"\nmax_delay = \"10ms\"\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "backoff.toml:3:13: stacks.p.retry.backoff.max_delay: must be at least the base delay 1s (got 10ms)"
    );
    let e = load_err(
        "budget.toml",
        "[stacks.p.retry.budget]\npercent = 2.0\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "budget.toml:2:11: stacks.p.retry.budget.percent: must lie in 0..=1 (got 2)"
    );
}

#[test]
fn an_unknown_enum_value_is_refused() {
    let e = load_err("enum.toml", "[stacks.p.router]\nselection = \"random\"\n");
    let m = msg(&e);
    assert!(
        m.starts_with(
            "enum.toml:2:13: stacks.p.router.selection: unknown variant `random`, expected one of"
        ),
        "{m}"
    );
}

#[test]
fn a_toml_syntax_error_has_its_line() {
    let e = load_err("syntax.toml", "[stacks.p\nid = 1\n");
    let m = msg(&e);
    assert!(m.starts_with("syntax.toml:1:"), "{m}");
}

#[test]
fn unknown_stack_name_lists_the_names() {
    let path = write("names.toml", GOOD);
    let config = FortifyConfig::from_path(&path).unwrap();
    let e = config.stack("billing").unwrap_err();
    assert_eq!(
        msg(&e),
        format!("names.toml: stacks.billing: no stack named `billing` (the file has: payments)")
    );
}

#[test]
fn unknown_extension_is_refused() {
    let e = load_err("fortify.ini", GOOD);
    assert_eq!(
        msg(&e),
        "fortify.ini: unknown format: the file name must end in .toml, .yaml, .yml or .json"
    );
}

#[test]
fn a_missing_file_is_named() {
    let e = FortifyConfig::from_path("/nonexistent/fortify.toml").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/fortify.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn yaml_files_read_the_same_and_name_line_and_field() {
    let yaml = r#"
defaults:
  breaker:
    failure_rate: 0.5
stacks:
  payments:
    breaker:
      open_duration: 2s
    backends:
      - id: eu-1
"#;
    let path = write("good.yaml", yaml);
    let from_yaml = FortifyConfig::from_path(&path)
        .unwrap()
        .stack("payments")
        .unwrap();
    let from_toml = FortifyConfig::from_toml_str(GOOD)
        .unwrap()
        .stack("payments")
        .unwrap();
    assert_eq!(from_yaml, from_toml);

    let e = load_err(
        "bad.yaml",
        "stacks:\n  payments:\n    bulkhead:\n      max_concurrent: lots\n",
    );
    assert_eq!(
        msg(&e),
        "bad.yaml:4:23: stacks.payments.bulkhead.max_concurrent: invalid type: string \"lots\", expected usize"
    );
    let e = load_err("syntax.yaml", "stacks: [\n");
    assert!(msg(&e).starts_with("syntax.yaml:"), "{}", msg(&e));
    assert!(e.line().is_some());
    // A builder's verdict on a YAML file names the line and the field too.
    let e = load_err(
        "range.yml",
        "stacks:\n  p:\n    breaker:\n      failure_rate: 1.5\n    backends:\n      - id: a\n",
    );
    assert_eq!(
        msg(&e),
        "range.yml:4:21: stacks.p.breaker.failure_rate: must lie in 0..=1 (got 1.5)"
    );
    let e = load_err(
        "dup.yml",
        "stacks:\n  p:\n    backends:\n      - id: a\n      - id: a\n",
    );
    assert_eq!(
        msg(&e),
        "dup.yml:5:13: stacks.p.backends[1].id: duplicate backend id `a`"
    );
}

#[test]
fn json_files_read_the_same_and_name_line_and_field() {
    let json = r#"{
  "defaults": { "breaker": { "failure_rate": 0.5 } },
  "stacks": { "payments": {
    "breaker": { "open_duration": "2s" },
    "backends": [ { "id": "eu-1" } ]
  } }
}"#;
    let from_json = FortifyConfig::parse(json, Format::Json)
        .unwrap()
        .stack("payments")
        .unwrap();
    let from_toml = FortifyConfig::from_toml_str(GOOD)
        .unwrap()
        .stack("payments")
        .unwrap();
    assert_eq!(from_json, from_toml);

    let e = load_err(
        "bad.json",
        "{ \"stacks\": { \"p\": { \"retry\": { \"max_attempts\": -1 } } } }",
    );
    assert_eq!(
        msg(&e),
        "bad.json:1:50: stacks.p.retry.max_attempts: invalid value: integer `-1`, expected u32"
    );
    let e = load_err(
        "unknown.json",
        "{ \"stacks\": { \"p\": { \"retries\": {} } } }",
    );
    assert!(
        msg(&e).starts_with("unknown.json:1:30: stacks.p.retries: unknown field `retries`"),
        "{}",
        msg(&e)
    );
    // A builder's verdict on a JSON file names the line and the field.
    let e = load_err(
        "range.json",
        "{\n  \"stacks\": {\n    \"p\": {\n      \"breaker\": { \"failure_rate\": 1.5 },\n      \"backends\": [{ \"id\": \"a\" }]\n    }\n  }\n}",
    );
    assert_eq!(
        msg(&e),
        "range.json:4:38: stacks.p.breaker.failure_rate: must lie in 0..=1 (got 1.5)"
    );
    let e = load_err("syntax.json", "{ \"stacks\": ");
    assert!(msg(&e).starts_with("syntax.json:1:"), "{}", msg(&e));
}

#[test]
fn the_readme_example_file_parses_and_builds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fortify.toml");
    let config = FortifyConfig::from_path(path).unwrap();
    assert_eq!(
        config.stack_names().collect::<Vec<_>>(),
        ["payments", "search"]
    );
    let payments = config.stack("payments").unwrap();
    assert_eq!(payments.deadline(), Duration::from_secs(2));
    assert_eq!(payments.attempt_timeout(), Duration::from_millis(500));
    assert_eq!(payments.max_concurrent(), 256);
    assert_eq!(payments.config.backends.len(), 3);
    #[cfg(feature = "rate-limit")]
    config.rate_limit("api").unwrap();
    // The README holds the same file.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let file = std::fs::read_to_string(path).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{file}```")),
        "README.md's \"Configuration files\" section must hold examples/fortify.toml verbatim"
    );
}

fn echo(
    id: &str,
) -> impl tower::Service<String, Response = String, Error = BoxError> + Clone + use<> {
    let id = id.to_string();
    service_fn(move |req: String| {
        let id = id.clone();
        async move { Ok::<_, BoxError>(format!("{id}: {req}")) }
    })
}

#[tokio::test(start_paused = true)]
async fn a_built_stack_prints_its_configuration_back() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fortify.toml");
    let config = FortifyConfig::from_path(path).unwrap();
    let settings = config.stack("payments").unwrap();
    let stack = settings.builder(|b| echo(&b.id)).unwrap().build().unwrap();
    assert_eq!(stack.deadline(), Duration::from_secs(2));
    assert_eq!(stack.attempt_timeout(), Duration::from_millis(500));
    assert_eq!(stack.bulkhead().limit(), 256);
    assert_eq!(stack.router().backend("eu-1").unwrap().weight, 2);
    assert_eq!(stack.router().backend("us-1").unwrap().tier, 1);

    let effective = stack.effective_config().expect("built from settings");
    let printed = effective.to_toml();
    let again = FortifyConfig::from_toml_str(&printed)
        .unwrap()
        .stack("payments")
        .unwrap();
    assert_eq!(again, effective, "printed:\n{printed}");
    // What the file set is what the stack runs with.
    assert_eq!(effective.config.breaker, settings.config.breaker);
    assert_eq!(effective.config.retry, settings.config.retry);
    assert!(printed.contains("[stacks.payments.breaker]"), "{printed}");
    assert!(printed.contains("failure_rate = 0.25"), "{printed}");
    assert!(printed.contains("deadline = \"2s\""), "{printed}");

    // A stack built by hand has no settings to give back.
    let plain = tower_fortify::stack::Stack::builder()
        .backend("a", echo("a"))
        .build()
        .unwrap();
    assert!(plain.effective_config().is_none());
}

#[test]
fn settings_print_and_read_back_equal() {
    let config = FortifyConfig::from_toml_str(GOOD).unwrap();
    let s: StackSettings = config.stack("payments").unwrap();
    let again = FortifyConfig::from_toml_str(&s.to_toml())
        .unwrap()
        .stack("payments")
        .unwrap();
    assert_eq!(again, s);
}

#[test]
fn each_builder_can_be_built_from_its_table() {
    use tower_fortify::circuit_breaker::CircuitBreakerLayer;
    use tower_fortify::config::{BreakerConfig, BulkheadConfig, RetryConfig};
    let breaker: BreakerConfig =
        toml::from_str("failure_rate = 0.3\nopen_duration = \"250ms\"").unwrap();
    CircuitBreakerLayer::try_from(&breaker).unwrap();
    let retry: RetryConfig = serde_json::from_str(
        r#"{"max_attempts": 4, "backoff": {"kind": "constant", "base": "50ms"}}"#,
    )
    .unwrap();
    tower_fortify::retry::RetryLayer::try_from(&retry).unwrap();
    let bulkhead: BulkheadConfig = toml::from_str("max_concurrent = 0").unwrap();
    let err = tower_fortify::bulkhead::BulkheadLayer::try_from(&bulkhead).unwrap_err();
    assert_eq!(err.field(), "bulkhead.max_concurrent");
}

#[test]
fn an_adaptive_bulkhead_is_described_by_its_algorithm_table() {
    let ok = "[stacks.p.bulkhead.adaptive]\ninitial = 10\nmax = 100\naimd = { backoff_ratio = 0.8 }\n[[stacks.p.backends]]\nid = \"a\"\n";
    let s = FortifyConfig::from_toml_str(ok)
        .unwrap()
        .stack("p")
        .unwrap();
    let again = FortifyConfig::from_toml_str(&s.to_toml())
        .unwrap()
        .stack("p")
        .unwrap();
    assert_eq!(again, s);
    let e = load_err(
        "adaptive.toml",
        "[stacks.p.bulkhead.adaptive]\ninitial = 10\naimd = { backoff_ratio = 0.2 }\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "adaptive.toml:3:26: stacks.p.bulkhead.adaptive.aimd.backoff_ratio: must lie in 0.5..=1 (got 0.2)"
    );
    let e = load_err(
        "algorithm.toml",
        "[stacks.p.bulkhead.adaptive]\ninitial = 10\n[[stacks.p.backends]]\nid = \"a\"\n",
    );
    assert_eq!(
        msg(&e),
        "algorithm.toml:1:1: stacks.p.bulkhead.adaptive: needs exactly one algorithm table: aimd, gradient2 or vegas"
    );
}

#[cfg(feature = "rate-limit")]
#[test]
fn a_rate_limiter_error_names_its_instance() {
    let e = load_err(
        "rate.toml",
        "[defaults.rate_limit]\nburst = 5\n[rate_limits.api]\nrate = 0\n",
    );
    assert_eq!(
        msg(&e),
        "rate.toml:4:8: rate_limits.api.rate: must be at least 1"
    );
    let path = write(
        "rate_ok.toml",
        "[rate_limits.api]\nrate = 5\nper = \"1m\"\n",
    );
    let config = FortifyConfig::from_path(&path).unwrap();
    config.rate_limit("api").unwrap();
    let e = config.rate_limit("web").unwrap_err();
    assert_eq!(
        msg(&e),
        "rate_ok.toml: rate_limits.web: no rate limiter named `web` (the file has: api)"
    );
}

#[cfg(feature = "http-client")]
#[tokio::test]
async fn an_http_stack_is_built_from_the_urls_with_tiers_and_weights() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fortify.toml");
    let settings = FortifyConfig::from_path(path)
        .unwrap()
        .stack("payments")
        .unwrap();
    let stack = settings.http::<String>().unwrap().build().unwrap();
    let ids: Vec<(String, u32, u32)> = stack
        .router()
        .backends()
        .into_iter()
        .map(|b| (b.id.to_string(), b.tier, b.weight))
        .collect();
    assert_eq!(
        ids,
        [
            ("eu-1".to_string(), 0, 2),
            ("eu-2".to_string(), 0, 1),
            ("us-1".to_string(), 1, 1)
        ]
    );
    assert_eq!(stack.deadline(), Duration::from_secs(2));
    // A backend without a URL cannot be an HTTP backend.
    let no_url = FortifyConfig::from_toml_str("[[stacks.p.backends]]\nid = \"a\"\n")
        .unwrap()
        .stack("p")
        .unwrap();
    let err = no_url.http::<String>().unwrap_err();
    assert_eq!(err.field(), "stack.backends.url");
}

/// A rule is switched off with `"off"`, as the builders switch one off with `no_*`;
/// a zero is not a switch and is refused naming the field.
#[tokio::test(start_paused = true)]
async fn a_rule_is_switched_off_with_off_and_a_zero_is_refused() {
    let path = write(
        "off.toml",
        "[defaults.breaker]\nconsecutive_failures = \"off\"\ncount_window = 50\n\
         [defaults.router]\nfailure_rate = \"off\"\n\
         [[stacks.payments.backends]]\nid = \"eu-1\"\n",
    );
    let config = FortifyConfig::from_path(&path).unwrap();
    let settings = config.stack("payments").unwrap();
    let stack = settings
        .builder(|_| service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }))
        .unwrap()
        .build()
        .unwrap();
    let printed = stack.effective_config().unwrap().to_toml();
    assert!(
        printed.contains("consecutive_failures = \"off\""),
        "{printed}"
    );
    assert!(printed.contains("failure_rate = \"off\""), "{printed}");

    let e = load_err(
        "zero.toml",
        "[stacks.payments.breaker]\nconsecutive_failures = 0\n\
         [[stacks.payments.backends]]\nid = \"eu-1\"\n",
    );
    let m = msg(&e);
    assert!(
        m.starts_with("zero.toml:2:24: stacks.payments.breaker.consecutive_failures:"),
        "{m}"
    );

    let e = load_err(
        "never.toml",
        "[stacks.payments.router]\nlatency_factor = \"never\"\n",
    );
    let m = msg(&e);
    assert!(
        m.contains("stacks.payments.router.latency_factor")
            && m.contains("expected a number or \"off\""),
        "{m}"
    );
}

/// A running rate limiter takes a new table from a reloaded file, keeping what it
/// has spent; a bad table changes nothing.
#[cfg(feature = "rate-limit")]
#[tokio::test(start_paused = true)]
async fn a_rate_limiter_takes_a_reloaded_table() {
    use tower::{Layer, Service, ServiceExt};
    use tower_fortify::config::RateLimitConfig;

    let path = write(
        "rate_live.toml",
        "[rate_limits.api]\nrate = 1\nper = \"1s\"\nburst = 2\n",
    );
    let layer = FortifyConfig::from_path(&path)
        .unwrap()
        .rate_limit("api")
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, BoxError>(x) }));
    for i in 0..2 {
        svc.ready().await.unwrap().call(i).await.unwrap();
    }
    assert!(svc.ready().await.unwrap().call(2).await.is_err());

    // The file edited and read again.
    std::fs::write(
        &path,
        "[rate_limits.api]\nrate = 1\nper = \"1s\"\nburst = 4\n",
    )
    .unwrap();
    let bigger = FortifyConfig::from_path(&path)
        .unwrap()
        .rate_limit_config("api")
        .unwrap();
    bigger.reconfigure(&handle).unwrap();
    for i in 0..2 {
        svc.ready().await.unwrap().call(10 + i).await.unwrap();
    }
    assert!(
        svc.ready().await.unwrap().call(12).await.is_err(),
        "2 of 4 were spent before"
    );

    let bad: RateLimitConfig = toml::from_str("rate = 0").unwrap();
    assert_eq!(
        bad.reconfigure(&handle).unwrap_err().field(),
        "rate_limit.rate"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    svc.ready().await.unwrap().call(13).await.unwrap();
}
