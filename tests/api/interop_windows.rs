//! Sending windows checked against an implementation we did not write: Python's zoneinfo
//! (tests/interop/windows_reference.py) computes, for random instants over two years and
//! around every daylight-saving change, when a window opens and closes, and Switchboard's
//! chrono-tz arithmetic must agree to the second. Runs in the interop leg
//! (SWITCHBOARD_INTEROP=1), which has the Python environment.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use switchboard::domain::pacing::{SendingWindows, Window};

use crate::interop::interop_dir;

fn windows(zone: &str, spec: &[(&[&str], &str, &str)]) -> SendingWindows {
    let list = spec
        .iter()
        .map(|(days, start, end)| {
            let days: Vec<String> = days.iter().map(|d| d.to_string()).collect();
            Window::parse(&days, start, end, "windows").unwrap()
        })
        .collect();
    SendingWindows::new(zone, list, "windows").unwrap()
}

fn text(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| {
        json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    })
}

/// Instants to ask about: random ones over 2026–2027, and every quarter hour of the days
/// around each change of the zone's offset in those years.
fn instants(zone: &SendingWindows, rng: &mut StdRng) -> Vec<DateTime<Utc>> {
    let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let span = 2 * 365 * 86_400;
    let mut at: Vec<DateTime<Utc>> = (0..600)
        .map(|_| from + Duration::seconds(rng.random_range(0..span)))
        .collect();
    let mut t = from;
    let offset = |t: DateTime<Utc>| t.with_timezone(&zone.time_zone).offset().fix();
    while t < from + Duration::seconds(span) {
        let next = t + Duration::hours(6);
        if offset(t) != offset(next) {
            let mut q = t - Duration::hours(30);
            while q < next + Duration::hours(30) {
                at.push(q);
                q += Duration::minutes(15);
            }
        }
        t = next;
    }
    at
}

#[test]
fn sending_windows_agree_with_pythons_zoneinfo_across_daylight_saving_changes() {
    let Some(installed) = interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/windows_reference.py");
    let weekdays: &[&str] = &["mon", "tue", "wed", "thu", "fri"];
    let every: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let cases = [
        ("Europe/Berlin", vec![(weekdays, "09:00", "17:30")]),
        // Starts and ends inside the hour the clock skips (spring) and repeats (autumn).
        ("America/New_York", vec![(every, "02:30", "03:30")]),
        // Touching windows, one ending at midnight, one through to 24:00.
        (
            "Europe/Berlin",
            vec![(every, "22:00", "24:00"), (every, "00:00", "01:30")],
        ),
        ("Australia/Lord_Howe", vec![(every, "01:45", "02:15")]),
    ];
    let mut rng = StdRng::seed_from_u64(18);
    let mut compared = 0;
    for (zone, spec) in cases {
        let w = windows(zone, &spec);
        let at = instants(&w, &mut rng);
        let request = json!({
            "time_zone": zone,
            "windows": spec.iter().map(|(days, start, end)| json!({"days": days, "start": start, "end": end})).collect::<Vec<_>>(),
            "instants": at.iter().map(|t| text(Some(*t))).collect::<Vec<_>>(),
        });
        let mut child = Command::new(installed.join("venv/bin/python"))
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "windows_reference.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(expected.len(), at.len());
        for (now, python) in at.iter().zip(&expected) {
            let ours =
                json!({"open_at": text(w.open_at(*now)), "closes_at": text(w.closes_at(*now))});
            assert_eq!(&ours, python, "{zone} {:?} at {now}", spec);
            compared += 1;
        }
    }
    eprintln!("{compared} instants compared with zoneinfo");
    assert!(compared > 2_000, "{compared}");
}
