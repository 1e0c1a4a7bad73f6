//! calbridge's recurrence expansion against an independent oracle: python-dateutil expands the
//! RRULE calbridge writes for each of many random Exchange patterns (every pattern type,
//! intervals, several days, days 29–31, every range), and the dates must be the same.
//!
//! `RECURRENCE_ORACLE_CASES` sets the number of patterns (default 10,000), `PYTHON` the
//! interpreter. Without python-dateutil the test is skipped with a note — except under CI.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{Duration, NaiveDate, Weekday};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use calbridge_core::recurrence::{Pattern, Range, Recurrence, WeekIndex};

const LIMIT: usize = 120;

fn weekday() -> impl Strategy<Value = Weekday> {
    (0u8..7).prop_map(|d| Weekday::try_from(d).unwrap())
}

fn days() -> impl Strategy<Value = Vec<Weekday>> {
    prop::collection::vec(weekday(), 1..4).prop_map(|mut v| {
        v.sort_by_key(|d| d.num_days_from_monday());
        v.dedup();
        v
    })
}

fn index() -> impl Strategy<Value = WeekIndex> {
    prop::sample::select(WeekIndex::ALL.to_vec())
}

fn interval() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 1u32..=1, 3 => 2u32..=4, 1 => 5u32..=13]
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        interval().prop_map(|interval| Pattern::Daily { interval }),
        (interval(), days(), weekday()).prop_map(|(interval, days, first_day_of_week)| Pattern::Weekly {
            interval,
            days,
            first_day_of_week
        }),
        (interval(), 1u32..=31)
            .prop_map(|(interval, day_of_month)| Pattern::AbsoluteMonthly { interval, day_of_month }),
        (interval(), days(), index()).prop_map(|(interval, days, index)| Pattern::RelativeMonthly {
            interval,
            days,
            index
        }),
        (1u32..=3, 1u32..=12, 1u32..=31).prop_map(|(interval, month, day_of_month)| Pattern::AbsoluteYearly {
            interval,
            month,
            day_of_month
        }),
        (1u32..=3, 1u32..=12, days(), index()).prop_map(|(interval, month, days, index)| Pattern::RelativeYearly {
            interval,
            month,
            days,
            index
        }),
    ]
}

fn recurrence() -> impl Strategy<Value = Recurrence> {
    let start = (0i64..4000).prop_map(|d| NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Duration::days(d));
    (pattern(), start, 0u8..3, 0i64..1500, 1u32..80).prop_map(|(pattern, start_date, kind, days, count)| {
        let range = match kind {
            0 => Range::NoEnd,
            1 => Range::EndDate { end_date: start_date + Duration::days(days) },
            _ => Range::Numbered { count },
        };
        Recurrence { pattern, start_date, range }
    })
}

#[test]
fn exchange_patterns_expand_as_python_dateutil_expands_their_rrule() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ci = std::env::var_os("CI").is_some();
    let has_dateutil =
        Command::new(&python).args(["-c", "import dateutil"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has_dateutil {
        assert!(!ci, "python-dateutil is missing under CI: pip install -r tests/python/requirements.txt");
        eprintln!("skipped: {python} has no python-dateutil (pip install -r tests/python/requirements.txt)");
        return;
    }
    let cases: usize = std::env::var("RECURRENCE_ORACLE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = recurrence();
    let rules: Vec<Recurrence> = (0..cases).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/rrule_oracle.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    let mut input = String::new();
    let untils: Vec<NaiveDate> = rules.iter().map(|r| r.start_date + Duration::days(3 * 366)).collect();
    for (r, until) in rules.iter().zip(&untils) {
        let line = serde_json::json!({
            "rule": r.to_rrule(),
            "dtstart": format!("{}T09:00:00", r.start_date),
            "until": until.to_string(),
            "limit": LIMIT,
        });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("the oracle's answer");
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "the oracle failed");
    let answers: Vec<Vec<String>> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), rules.len());

    let mut mismatches = Vec::new();
    for ((r, until), expected) in rules.iter().zip(&untils).zip(&answers) {
        let ours: Vec<String> = r.dates(*until, LIMIT).iter().map(|d| d.to_string()).collect();
        if &ours != expected {
            mismatches.push(format!("{r:?}\n  rrule {}\n  calbridge {ours:?}\n  dateutil  {expected:?}", r.to_rrule()));
        }
        // What calbridge writes, it reads back as the same rule.
        assert_eq!(Recurrence::from_rrule(&r.to_rrule(), r.start_date), Ok(r.clone().normalized()), "{}", r.to_rrule());
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} patterns differ; the first:\n{}",
        mismatches.len(),
        rules.len(),
        mismatches[..mismatches.len().min(3)].join("\n")
    );
    let total: usize = answers.iter().map(Vec::len).sum();
    eprintln!("{} patterns, {total} occurrences: calbridge and python-dateutil agree", rules.len());
}
