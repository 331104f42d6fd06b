//! Unit tests of conditions, selectors and their errors (kept beside the module so the
//! parser file stays readable).

use super::*;

const STAT_HINT: &str = "statistics are avg, min, max, med, p(N), count, rate, value";
const OP_HINT: &str = "operators are <, <=, >, >=, ==, !=";
const PCT_HINT: &str = "percentiles go from 0 to 100, e.g. `p(95)` or `p(99.9)`";
const LIMIT_HINT: &str = "the limit is a plain number in the metric's unit, e.g. `p(95) < 300` or `rate < 0.01`";

fn cond(input: &str) -> Condition {
    Condition::parse(input).unwrap_or_else(|e| panic!("{e}\n{}", e.render_caret()))
}

fn cond_err(input: &str) -> ThresholdError {
    match Condition::parse(input) {
        Ok(c) => panic!("{input:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

fn sel(input: &str) -> Selector {
    Selector::parse(input).unwrap_or_else(|e| panic!("{e}\n{}", e.render_caret()))
}

fn sel_err(input: &str) -> ThresholdError {
    match Selector::parse(input) {
        Ok(s) => panic!("{input:?} parsed as {s:?}"),
        Err(e) => e,
    }
}

fn sink(kind: MetricKind, values: &[f64]) -> Sink {
    let mut s = Sink::new(kind);
    for v in values {
        s.add(*v);
    }
    s
}

const Z: Duration = Duration::ZERO;

#[test]
fn parses_the_k6_forms() {
    let cases: &[(&str, Stat, Op, f64)] = &[
        ("p(95) < 300", Stat::Percentile(95.0), Op::Lt, 300.0),
        ("p(95)<300", Stat::Percentile(95.0), Op::Lt, 300.0),
        ("avg<200", Stat::Avg, Op::Lt, 200.0),
        ("rate>=0.99", Stat::Rate, Op::Ge, 0.99),
        ("count > 100", Stat::Count, Op::Gt, 100.0),
        ("med<=150", Stat::Med, Op::Le, 150.0),
        ("max < 10000", Stat::Max, Op::Lt, 10000.0),
        ("min > 0.5", Stat::Min, Op::Gt, 0.5),
        ("p(99.9)<800", Stat::Percentile(99.9), Op::Lt, 800.0),
        ("p( 50 ) < 1", Stat::Percentile(50.0), Op::Lt, 1.0),
        ("p(0)>=0", Stat::Percentile(0.0), Op::Ge, 0.0),
        ("p(100)<=1e4", Stat::Percentile(100.0), Op::Le, 10000.0),
        ("value < 5", Stat::Value, Op::Lt, 5.0),
        ("value == 5", Stat::Value, Op::Eq, 5.0),
        ("value===5", Stat::Value, Op::Eq, 5.0),
        ("value != -2.5", Stat::Value, Op::Ne, -2.5),
        ("rate < .01", Stat::Rate, Op::Lt, 0.01),
        ("  count\t>\t+3  ", Stat::Count, Op::Gt, 3.0),
    ];
    for (input, stat, op, limit) in cases {
        let c = cond(input);
        assert_eq!((c.stat, c.op, c.limit), (*stat, *op, *limit), "input {input:?}");
        assert_eq!(c.source, input.trim());
    }
}

#[test]
fn displays_canonically() {
    assert_eq!(cond("p(95)<300").to_string(), "p(95) < 300");
    assert_eq!(cond("p(99.9)   <=  800.0").to_string(), "p(99.9) <= 800");
    assert_eq!(cond("rate===0.99").to_string(), "rate == 0.99");
    assert_eq!("avg>=1".parse::<Condition>().unwrap().to_string(), "avg >= 1");
}

/// (input, message, column, hint)
type Case = (&'static str, &'static str, usize, String);

fn check(cases: Vec<Case>, parse: fn(&str) -> ThresholdError) {
    for (input, message, column, hint) in cases {
        let e = parse(input);
        assert_eq!(
            (e.message.as_str(), e.column, e.hint.as_deref()),
            (message, Some(column), Some(hint.as_str())),
            "input {input:?}"
        );
        assert_eq!(e.input, input);
    }
}

#[test]
fn unknown_statistics_suggest_what_was_meant() {
    let mean = |s: &str| format!("did you mean `{s}`? {STAT_HINT}");
    check(
        vec![
            ("p95 < 300", "unknown statistic \"p95\"", 0, mean("p(95)")),
            ("p99.9<800", "unknown statistic \"p99.9\"", 0, mean("p(99.9)")),
            ("P(95) < 300", "unknown statistic \"P\"", 0, mean("p(95)")),
            ("percentile(90) < 3", "unknown statistic \"percentile\"", 0, mean("p(90)")),
            ("p < 3", "unknown statistic \"p\"", 0, mean("p(N)")),
            ("AVG < 3", "unknown statistic \"AVG\"", 0, mean("avg")),
            ("mean < 3", "unknown statistic \"mean\"", 0, mean("avg")),
            ("median < 3", "unknown statistic \"median\"", 0, mean("med")),
            ("  avgg < 3", "unknown statistic \"avgg\"", 2, mean("avg")),
            ("mxa < 3", "unknown statistic \"mxa\"", 0, STAT_HINT.to_string()),
            ("maxx < 3", "unknown statistic \"maxx\"", 0, mean("max")),
            ("cuont > 1", "unknown statistic \"cuont\"", 0, mean("count")),
            ("stddev < 3", "unknown statistic \"stddev\"", 0, STAT_HINT.to_string()),
            ("p200 < 3", "unknown statistic \"p200\"", 0, STAT_HINT.to_string()),
        ],
        cond_err,
    );
}

#[test]
fn malformed_conditions_point_at_the_problem() {
    let op_hint = |op: &str| format!("did you mean `{op}`? {OP_HINT}");
    let missing_op = "compare with one of <, <=, >, >=, ==, !=, e.g. `p(95) < 300`".to_string();
    let ms = |ms: &str, written: &str| format!("durations are compared in milliseconds: write `{ms}`, not `{written}`");
    let several = "a condition is one statistic, one operator and one number; \
                   write each condition as its own string"
        .to_string();
    check(
        vec![
            ("", "it is empty", 0, "a condition is a statistic, an operator and a number, e.g. `p(95) < 300`".into()),
            ("p(95) <> 300", "unknown operator \"<>\"", 6, op_hint("!=")),
            ("avg = 200", "unknown operator \"=\"", 4, op_hint("==")),
            ("avg =< 200", "unknown operator \"=<\"", 4, op_hint("<=")),
            ("avg => 200", "unknown operator \"=>\"", 4, op_hint(">=")),
            ("avg !== 200", "unknown operator \"!==\"", 4, op_hint("!=")),
            ("avg << 200", "unknown operator \"<<\"", 4, OP_HINT.into()),
            ("avg lt 200", "unknown operator \"lt\"", 4, op_hint("<")),
            ("avg ~ 200", "unknown operator \"~\"", 4, OP_HINT.into()),
            ("avg 200", "missing operator before \"200\"", 4, missing_op.clone()),
            ("p(95)", "missing operator after \"p(95)\"", 5, missing_op.clone()),
            (
                "< 300",
                "missing statistic before \"<\"",
                0,
                format!("a condition starts with a statistic: {}", "avg, min, max, med, p(N), count, rate, value"),
            ),
            ("p(95) <", "missing number after \"<\"", 7, LIMIT_HINT.into()),
            ("p(95) < abc", "invalid number \"abc\"", 8, LIMIT_HINT.into()),
            ("p(95) < 1e999", "number 1e999 is out of range", 8, LIMIT_HINT.into()),
            ("p(95) < 300ms", "unexpected \"ms\" after the limit", 11, ms("300", "300ms")),
            ("p(95) < 2s", "unexpected \"s\" after the limit", 9, ms("2000", "2s")),
            ("p(95) < 1.5 s ", "unexpected \"s\" after the limit", 12, ms("1500", "1.5s")),
            (
                "rate > 99%",
                "unexpected \"%\" after the limit",
                9,
                "rates are fractions from 0 to 1: write `0.99`, not `99%`".into(),
            ),
            ("p(95) < 300 && p(99) < 500", "unexpected \"&& p(99) < 500\" after the limit", 12, several.clone()),
            ("p(95) < 300, avg < 200", "unexpected \", avg < 200\" after the limit", 11, several),
            ("p() < 3", "missing percentile in `p()`", 2, PCT_HINT.into()),
            ("p(x) < 3", "invalid percentile \"x\"", 2, PCT_HINT.into()),
            ("p(101) < 3", "percentile 101 is out of range", 2, PCT_HINT.into()),
            ("p(-1) < 3", "percentile -1 is out of range", 2, PCT_HINT.into()),
            ("p(95 < 3", "unexpected '<' in percentile", 5, PCT_HINT.into()),
            ("p(95", "unclosed \"(\"", 1, "close the percentile: `p(95)`".into()),
        ],
        cond_err,
    );
}

#[test]
fn error_display_quotes_the_input() {
    assert_eq!(cond_err("p(95) <> 300").to_string(), "invalid threshold \"p(95) <> 300\": unknown operator \"<>\"");
    assert_eq!(
        sel_err("http_req_duration{phase:peak").to_string(),
        "invalid threshold \"http_req_duration{phase:peak\": unclosed \"{\""
    );
}

#[test]
fn caret_renders_three_lines() {
    assert_eq!(
        cond_err("p(95) <> 300").render_caret(),
        "p(95) <> 300\n      ^\nhint: did you mean `!=`? operators are <, <=, >, >=, ==, !="
    );
    // Tabs stay tabs under the input so the caret lines up in a terminal.
    assert_eq!(cond_err("avg\t<\tx").render_caret(), format!("avg\t<\tx\n   \t \t^\nhint: {LIMIT_HINT}"));
    // The end of the input is a valid place for the caret.
    assert_eq!(cond_err("avg <").render_caret(), format!("avg <\n     ^\nhint: {LIMIT_HINT}"));
    let bare = ThresholdError { input: "x".into(), message: "m".into(), column: None, hint: None };
    assert_eq!(bare.render_caret(), "x");
}

#[test]
fn validates_the_statistic_against_the_metric_kind() {
    use MetricKind::*;
    let ok: &[(&str, MetricKind)] = &[
        ("count>1", Counter),
        ("rate>1", Counter),
        ("value>1", Gauge),
        ("rate>0.9", Rate),
        ("avg<1", Trend),
        ("min<1", Trend),
        ("max<1", Trend),
        ("med<1", Trend),
        ("p(90)<1", Trend),
        ("count>1", Trend),
    ];
    for (input, kind) in ok {
        assert_eq!(cond(input).validate_for(*kind), Ok(()), "{input} on {kind:?}");
    }
    let bad: &[(&str, MetricKind, &str, &str)] = &[
        (
            "p(95) < 300",
            Rate,
            "p(95) does not apply to a rate metric (use rate)",
            "a rate has `rate`, the share of non-zero samples, e.g. `rate<0.01`",
        ),
        (
            "count > 1",
            Rate,
            "count does not apply to a rate metric (use rate)",
            "a rate has `rate`, the share of non-zero samples, e.g. `rate<0.01`",
        ),
        (
            "avg<1",
            Counter,
            "avg does not apply to a counter metric (use count, rate)",
            "a counter has `count` (its total) and `rate` (per second)",
        ),
        (
            "max<1",
            Gauge,
            "max does not apply to a gauge metric (use value)",
            "a gauge has `value` (the last value set)",
        ),
        (
            "rate<1",
            Trend,
            "rate does not apply to a trend metric (use avg, min, max, med, p(N), count)",
            "a trend has avg, min, max, med, p(N) and count",
        ),
        (
            "value<1",
            Trend,
            "value does not apply to a trend metric (use avg, min, max, med, p(N), count)",
            "a trend has avg, min, max, med, p(N) and count",
        ),
    ];
    for (input, kind, message, hint) in bad {
        let e = cond(input).validate_for(*kind).unwrap_err();
        assert_eq!(
            (e.input.as_str(), e.message.as_str(), e.column, e.hint.as_deref()),
            (*input, *message, Some(0), Some(*hint)),
            "{input} on {kind:?}"
        );
    }
    assert_eq!(
        cond("  p(95) < 300 ").validate_for(Rate).unwrap_err().to_string(),
        "invalid threshold \"p(95) < 300\": p(95) does not apply to a rate metric (use rate)"
    );
}

#[test]
fn evaluates_trend_statistics() {
    // avg, min, max and count are exact: 1..=100 gives avg 50.5.
    let ints: Vec<f64> = (1..=100).map(f64::from).collect();
    let ints = sink(MetricKind::Trend, &ints);
    // Percentiles come from the HDR histogram, exact below 2.048 (in thousandths):
    // 0.02, 0.04, ..., 2.0 gives med 1.0, p(95) 1.9, p(99.9) 2.0, p(0) 0.02.
    let fine: Vec<f64> = (1..=100).map(|k| f64::from(k) / 50.0).collect();
    let fine = sink(MetricKind::Trend, &fine);
    let cases: &[(&Sink, &str, bool, f64)] = &[
        (&ints, "avg < 50.6", true, 50.5),
        (&ints, "avg < 50.5", false, 50.5),
        (&ints, "avg <= 50.5", true, 50.5),
        (&ints, "min >= 1", true, 1.0),
        (&ints, "max > 100", false, 100.0),
        (&ints, "max != 100", false, 100.0),
        (&ints, "count > 99", true, 100.0),
        (&ints, "count > 100", false, 100.0),
        (&fine, "med == 1", true, 1.0),
        (&fine, "p(50) == 1", true, 1.0),
        (&fine, "p(95) < 1.9", false, 1.9),
        (&fine, "p(95) <= 1.9", true, 1.9),
        (&fine, "p(99.9) < 2", false, 2.0),
        (&fine, "p(0) == 0.02", true, 0.02),
    ];
    for (sink, input, passed, observed) in cases {
        let v = cond(input).evaluate(sink, Z).unwrap();
        assert_eq!(v, Verdict { passed: *passed, observed: Some(*observed) }, "{input}");
    }
}

#[test]
fn evaluates_percentiles_of_realistic_durations() {
    // 10..=1000 ms in steps of 10: p(95) is 950 ms within the histogram's 3 significant
    // figures, so 945 fails and 955 passes (the histogram must grow past its initial
    // range instead of clamping every value to it).
    let values: Vec<f64> = (1..=100).map(|k| f64::from(k) * 10.0).collect();
    let trend = sink(MetricKind::Trend, &values);
    let p95 = |input: &str| cond(input).evaluate(&trend, Z).unwrap();
    let v = p95("p(95) < 955");
    assert!(v.passed, "{v:?}");
    let observed = v.observed.unwrap();
    assert!((950.0..=950.5).contains(&observed), "{observed}");
    assert!(!p95("p(95) < 945").passed);
    assert_eq!(p95("p(100) <= 1000"), Verdict { passed: true, observed: Some(1000.0) });
    assert_eq!(p95("med > 500").observed.map(f64::round), Some(500.0));
}

#[test]
fn evaluates_rates_counters_and_gauges() {
    let failed = sink(MetricKind::Rate, &[0.0, 0.0, 0.0, 1.0]);
    assert_eq!(cond("rate < 0.3").evaluate(&failed, Z).unwrap(), Verdict { passed: true, observed: Some(0.25) });
    assert_eq!(cond("rate >= 0.99").evaluate(&failed, Z).unwrap(), Verdict { passed: false, observed: Some(0.25) });

    let reqs = sink(MetricKind::Counter, &[40.0, 80.0]);
    let ten_s = Duration::from_secs(10);
    assert_eq!(cond("count > 100").evaluate(&reqs, ten_s).unwrap(), Verdict { passed: true, observed: Some(120.0) });
    assert_eq!(cond("rate >= 12").evaluate(&reqs, ten_s).unwrap(), Verdict { passed: true, observed: Some(12.0) });
    assert_eq!(
        cond("rate > 12").evaluate(&reqs, Duration::from_secs(20)).unwrap(),
        Verdict { passed: false, observed: Some(6.0) }
    );

    let vus = sink(MetricKind::Gauge, &[10.0, 50.0, 20.0]);
    assert_eq!(cond("value < 25").evaluate(&vus, Z).unwrap(), Verdict { passed: true, observed: Some(20.0) });
    assert_eq!(cond("value == 50").evaluate(&vus, Z).unwrap(), Verdict { passed: false, observed: Some(20.0) });
}

#[test]
fn no_data_is_not_a_pass() {
    let none = Verdict { passed: false, observed: None };
    assert_eq!(cond("p(95) < 300").evaluate(&Sink::new(MetricKind::Trend), Z).unwrap(), none);
    assert_eq!(cond("avg > 0").evaluate(&Sink::new(MetricKind::Trend), Z).unwrap(), none);
    assert_eq!(cond("rate < 0.01").evaluate(&Sink::new(MetricKind::Rate), Z).unwrap(), none);
    assert_eq!(cond("value < 5").evaluate(&Sink::new(MetricKind::Gauge), Z).unwrap(), none);
    // A counter that never moved is a real zero (k6's `errors: ['count<1']` passes).
    assert_eq!(
        cond("count < 1").evaluate(&Sink::new(MetricKind::Counter), Z).unwrap(),
        Verdict { passed: true, observed: Some(0.0) }
    );
}

#[test]
fn evaluating_the_wrong_kind_is_an_error() {
    let rate = sink(MetricKind::Rate, &[1.0]);
    let e = cond("p(95) < 300").evaluate(&rate, Z).unwrap_err();
    assert_eq!(e.message, "p(95) does not apply to a rate metric (use rate)");
    // Sink::stat would answer `count` on a rate; the k6 table does not allow it.
    let e = cond("count > 0").evaluate(&rate, Z).unwrap_err();
    assert_eq!(e.message, "count does not apply to a rate metric (use rate)");
}

#[test]
fn operators_compare_as_written_and_nan_never_passes() {
    let table = [
        (Op::Lt, [true, false, false]),
        (Op::Le, [true, true, false]),
        (Op::Gt, [false, false, true]),
        (Op::Ge, [false, true, true]),
        (Op::Eq, [false, true, false]),
        (Op::Ne, [true, false, true]),
    ];
    for (op, expected) in table {
        assert_eq!([op.holds(1.0, 2.0), op.holds(2.0, 2.0), op.holds(3.0, 2.0)], expected, "{op}");
        assert!(!op.holds(f64::NAN, 2.0), "{op}");
    }
}

#[test]
fn parses_selectors() {
    let s = sel("http_req_duration");
    assert_eq!((s.metric.as_str(), s.filters.len()), ("http_req_duration", 0));
    let s = sel(" http_req_duration { phase : peak , name:configure } ");
    assert_eq!(s.metric, "http_req_duration");
    assert_eq!(
        s.filters,
        vec![("phase".to_string(), "peak".to_string()), ("name".to_string(), "configure".to_string())]
    );
    // Values keep everything but `,` and `}`, including `:` and inner spaces.
    let s = sel("http_reqs{url:http://sim/configure?x=1,group:::setup a}");
    assert_eq!(
        s.filters,
        vec![
            ("url".to_string(), "http://sim/configure?x=1".to_string()),
            ("group".to_string(), "::setup a".to_string()),
        ]
    );
    assert_eq!(sel("_x9").metric, "_x9");
}

#[test]
fn displays_selectors_canonically() {
    assert_eq!(sel("http_req_duration").to_string(), "http_req_duration");
    assert_eq!(sel("http_req_duration{ phase: peak }").to_string(), "http_req_duration{phase:peak}");
    assert_eq!(
        sel("http_req_duration{phase:peak ,name: configure}").to_string(),
        "http_req_duration{phase:peak,name:configure}"
    );
    let s: Selector = "checks{check:status is 200}".parse().unwrap();
    assert_eq!(s.to_string(), "checks{check:status is 200}");
}

#[test]
fn selectors_match_samples_having_every_filter() {
    let s = sel("http_req_duration{phase:peak,name:configure}");
    assert!(s.matches(&[("phase", "peak"), ("name", "configure")]));
    assert!(s.matches(&[("method", "POST"), ("name", "configure"), ("phase", "peak")]));
    assert!(!s.matches(&[("phase", "peak")]));
    assert!(!s.matches(&[("phase", "peak"), ("name", "Configure")]));
    assert!(!s.matches(&[("phase", "ramp"), ("name", "configure")]));
    let owned = vec![("phase".to_string(), "peak".to_string()), ("name".to_string(), "configure".to_string())];
    assert!(s.matches(&owned));
    let any = sel("http_reqs");
    let no_tags: [(&str, &str); 0] = [];
    assert!(any.matches(&no_tags));
    assert!(any.matches(&[("phase", "peak")]));
}

#[test]
fn malformed_selectors_point_at_the_problem() {
    let name_hint = "metric names are letters, digits and `_`, not starting with a digit, \
                     optionally followed by tag filters: `http_req_duration{phase:peak}`"
        .to_string();
    let filter_hint = "write each filter as `tag:value`, e.g. `{phase:peak,name:configure}`".to_string();
    check(
        vec![
            ("", "missing metric name", 0, name_hint.clone()),
            ("   ", "missing metric name", 3, name_hint.clone()),
            ("{phase:peak}", "missing metric name before \"{\"", 0, name_hint.clone()),
            ("http-req-duration", "unexpected '-' in metric name", 4, name_hint.clone()),
            ("http_req_duration}", "unexpected '}' in metric name", 17, name_hint.clone()),
            ("http req", "unexpected \"req\" after metric name", 5, name_hint.clone()),
            ("9lives", "metric name \"9lives\" starts with a digit", 0, name_hint),
            ("http_req_duration{phase:peak", "unclosed \"{\"", 17, "close the tag filters with `}`".into()),
            (
                "http_req_duration{phase:peak}x",
                "unexpected \"x\" after \"}\"",
                29,
                "the tag filters end at the first `}`; nothing may follow them".into(),
            ),
            (
                "http_req_duration{}",
                "empty tag filters \"{}\"",
                17,
                "remove the braces, or add filters like `{phase:peak}`".into(),
            ),
            ("http_req_duration{phase}", "tag filter \"phase\" has no \":\"", 18, filter_hint.clone()),
            ("m{a:1, phase peak }", "tag filter \"phase peak\" has no \":\"", 7, filter_hint.clone()),
            ("m{a:1,,b:2}", "empty tag filter", 6, "remove the extra `,`; filters are separated by one `,`".into()),
            ("m{a:1,}", "empty tag filter", 6, "remove the extra `,`; filters are separated by one `,`".into()),
            ("m{:peak}", "missing tag name before \":\"", 2, filter_hint.clone()),
            ("m{my phase:peak}", "invalid tag name \"my phase\"", 4, filter_hint.clone()),
            ("m{phase:}", "tag \"phase\" has no value", 8, filter_hint),
            (
                "m{phase:a, phase:b}",
                "tag \"phase\" is filtered twice",
                11,
                "a sample has one value per tag, so this selector could never match".into(),
            ),
        ],
        sel_err,
    );
}

#[test]
fn selector_caret_points_at_the_open_brace() {
    assert_eq!(
        sel_err("http_req_duration{phase:peak").render_caret(),
        "http_req_duration{phase:peak\n                 ^\nhint: close the tag filters with `}`"
    );
}

#[test]
fn suggestions_use_edit_distance() {
    assert_eq!(edit_distance("", "avg"), 3);
    assert_eq!(edit_distance("avg", "avg"), 0);
    assert_eq!(edit_distance("avgg", "avg"), 1);
    assert_eq!(edit_distance("mxa", "max"), 2);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn a_condition_may_end_with_a_sliding_window() {
    let c = cond("p(95) < 300 over 30s");
    assert_eq!(c.window, Some(Duration::from_secs(30)));
    assert_eq!(c.limit, 300.0);
    assert_eq!(c.to_string(), "p(95) < 300 over 30s");
    assert_eq!(cond("rate<0.01 over 2m").window, Some(Duration::from_secs(120)));
    assert_eq!(cond("p(95) < 300").window, None);
    let e = cond_err("p(95) < 300 over");
    assert_eq!(e.message, "missing window length after \"over\"");
    let e = cond_err("p(95) < 300 over 1.5s");
    assert!(e.message.contains("whole seconds"), "{e}");
    assert_eq!(e.column, Some(17));
    let e = cond_err("p(95) < 300 during 30s");
    assert!(e.message.starts_with("unexpected \"during 30s\""), "{e}");
}
